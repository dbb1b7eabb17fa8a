#!/bin/sh
# Entry point of asya-eval-rabbitmq (written for Asya). It keeps the interface that
# charts/asya-rabbitmq uses: HOME, RABBITMQ_NODENAME, RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE,
# RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (the user created when the data directory is
# empty: the broker reads the two variables itself) and /etc/rabbitmq/{rabbitmq.conf,enabled_plugins}
# (the chart's ConfigMap). Any other command (the chart's init container runs `sh -ec ...`)
# runs as given.
set -eu

log() { printf 'asya-eval-rabbitmq: %s\n' "$*" >&2; }

if [ "${1:-}" != rabbitmq-server ]; then
  exec "$@"
fi

# A half-configured user is refused here, not by a broker that would fall back to guest/guest
# (which RabbitMQ only admits from loopback: every client in the cluster would be refused).
if [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && [ -z "${RABBITMQ_DEFAULT_PASS:-}" ]; then
  log "RABBITMQ_DEFAULT_USER is set but RABBITMQ_DEFAULT_PASS is empty"; exit 1
fi
if [ -z "${RABBITMQ_DEFAULT_USER:-}" ] && [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then
  log "RABBITMQ_DEFAULT_PASS is set but RABBITMQ_DEFAULT_USER is empty"; exit 1
fi

: "${HOME:=/var/lib/rabbitmq}"
cookie=$HOME/.erlang.cookie
# The CLI tools of the probes authenticate with this cookie; Erlang refuses one that others can read.
if [ -e "$cookie" ] && [ -n "$(find "$cookie" -perm /077)" ]; then
  log "$cookie is readable by group or others: Erlang refuses it (mode 0400 expected)"; exit 1
fi
for dir in "${RABBITMQ_MNESIA_BASE:-$HOME/mnesia}" "${RABBITMQ_LOG_BASE:-/var/log/rabbitmq}"; do
  mkdir -p "$dir" || { log "cannot create $dir: mount a writable volume there"; exit 1; }
done

exec "$@"
