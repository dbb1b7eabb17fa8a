#!/bin/sh
# Entry point of asya-eval-postgresql (written for Asya). It keeps the interface that
# charts/asya-postgresql uses: PGDATA, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, and the
# arguments `postgres -c name=value ...`. On an empty PGDATA it runs initdb (POSTGRES_USER the
# superuser, with POSTGRES_PASSWORD), allows password (scram-sha-256) logins over TCP from
# anywhere and trusts the Unix socket (reachable inside the container only), and creates
# POSTGRES_DB; then it replaces itself with the server. Any other command runs as given.
set -eu

log() { printf 'asya-eval-postgresql: %s\n' "$*" >&2; }

case "${1:-}" in
  postgres) shift ;;
  -*) ;;  # bare server options
  *) exec "$@" ;;
esac

: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    log "POSTGRES_PASSWORD is empty: set it (the password of superuser $user) to initialise $PGDATA"
    exit 1
  fi
  mkdir -p "$PGDATA" || { log "cannot create $PGDATA: mount a writable volume there"; exit 1; }
  chmod 0700 "$PGDATA"
  pwfile=$(mktemp)  # under TMPDIR (/tmp): the password never lands in the data directory
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  log "initialising $PGDATA (superuser $user, database $db)"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  trap - EXIT
  # jit off: the image leaves out the LLVM JIT provider (100 MB) that an evaluation never needs
  printf "\n# asya-eval-postgresql\nlisten_addresses = '*'\njit = off\n" >>"$PGDATA/postgresql.conf"
  printf '\n# asya-eval-postgresql: password logins from the pod network\nhost all all all scram-sha-256\n' \
    >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # Single-user mode: no listening server exists before the real one, so a probe never sees
    # a half-initialised database as ready. Identifiers are quoted ("" escapes a quote).
    quoted_db=$(printf '%s' "$db" | sed 's/"/""/g')
    quoted_user=$(printf '%s' "$user" | sed 's/"/""/g')
    out=$(printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$quoted_db" "$quoted_user" |
      postgres --single -D "$PGDATA" -c listen_addresses= postgres 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
    case "$out" in *ERROR*) printf '%s\n' "$out" >&2; log "could not create database $db"; exit 1 ;; esac
  fi
  log "initialised"
fi

exec postgres "$@"
