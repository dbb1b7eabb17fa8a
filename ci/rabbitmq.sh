#!/usr/bin/env bash
# Private RabbitMQ node for tests and local runs, from the Debian rabbitmq-server package.
#
#   ci/rabbitmq.sh start DIR     start a node with data in DIR; prints AMQP_URL=... and writes DIR/env
#   ci/rabbitmq.sh stop DIR      stop it (rabbitmqctl stop, then its private epmd)
#   ci/rabbitmq.sh restart DIR   stop + start on the same node name, ports and data (messages survive)
#   ci/rabbitmq.sh crash DIR     kill -9 the node's Erlang VM (no clean shutdown), wait until it is gone;
#                                `start DIR` brings it back on the same ports and data
#
# Everything lives in DIR and on free 127.0.0.1 ports (AMQP, Erlang distribution, epmd),
# so it neither needs nor disturbs a node Debian may have started on 5672/4369.
# HOME=DIR puts the Erlang cookie where both the node and rabbitmqctl read it (we may
# run as root, and the package's wrappers would otherwise `su rabbitmq`).
# ASYA_RABBITMQ_MANAGEMENT=1 also enables the management UI on a free port (slower start;
# nothing in Asya needs it) and prints MANAGEMENT_URL=...; ASYA_RABBITMQ_PROMETHEUS=1 the
# rabbitmq_prometheus plugin (PROMETHEUS_URL=..., per-queue depth at /metrics/per-object).
# Called by the `rabbitmq_server` pytest fixture (python/tests/fixtures/rabbitmq.py).
set -euo pipefail

RMQ_BIN=${RMQ_BIN:-/usr/lib/rabbitmq/bin}
START_TIMEOUT_S=${RABBITMQ_START_TIMEOUT_S:-60}

usage() { echo "usage: $0 start|stop|restart DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)

# shellcheck source=lib/services.sh
. "$(dirname "$0")/lib/services.sh"


write_env() {
  # First start picks the node name and ports; restarts reuse them so the URL and
  # the Mnesia directory (named after the node) stay valid.
  local node amqp dist epmd ctl
  node="asya-$(basename "$DIR" | tr -c 'a-zA-Z0-9\n' '-' | cut -c1-20)-$$@localhost"
  amqp=$(free_port); dist=$(free_port); epmd=$(free_port); ctl=$(free_port)
  mkdir -p "$DIR/mnesia" "$DIR/log"
  cat >"$DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$amqp
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
EOF
  # A retry being dead-lettered (at-least-once, quorum delay queues) when the broker dies is
  # forwarded again after this timeout once the node is back; RabbitMQ's default is 3 minutes.
  echo '[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 5000}]}].' >"$DIR/advanced.config"
  echo '[].' >"$DIR/enabled_plugins"
  local mgmt=""
  if [ "${ASYA_RABBITMQ_MANAGEMENT:-0}" = 1 ]; then
    mgmt=$(free_port)
    echo '[rabbitmq_management].' >"$DIR/enabled_plugins"
    printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' "$mgmt" >>"$DIR/rabbitmq.conf"
  fi
  # ASYA_RABBITMQ_PROMETHEUS=1: the rabbitmq_prometheus plugin on a free loopback port (queue depth
  # per queue at /metrics/per-object, for the dashboard tests)
  local prom=""
  if [ "${ASYA_RABBITMQ_PROMETHEUS:-0}" = 1 ]; then
    prom=$(free_port)
    local plugins="rabbitmq_prometheus"
    [ -n "$mgmt" ] && plugins="rabbitmq_management,rabbitmq_prometheus"
    echo "[$plugins]." >"$DIR/enabled_plugins"
    printf 'prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = %s\n' "$prom" >>"$DIR/rabbitmq.conf"
  fi
  cat >"$DIR/env" <<EOF
AMQP_URL=amqp://guest:guest@127.0.0.1:$amqp/
MANAGEMENT_URL=${mgmt:+http://127.0.0.1:$mgmt/}
PROMETHEUS_URL=${prom:+http://127.0.0.1:$prom/}
HOME=$DIR
RABBITMQ_NODENAME=$node
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$amqp
RABBITMQ_DIST_PORT=$dist
RABBITMQ_CTL_DIST_PORT_MIN=$ctl
RABBITMQ_CTL_DIST_PORT_MAX=$ctl
ERL_EPMD_ADDRESS=127.0.0.1
ERL_EPMD_PORT=$epmd
RABBITMQ_MNESIA_BASE=$DIR/mnesia
RABBITMQ_LOG_BASE=$DIR/log
RABBITMQ_CONFIG_FILE=$DIR/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$DIR/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins
RABBITMQ_PID_FILE=$DIR/rabbitmq.pid
RABBITMQ_CONF_ENV_FILE=$DIR/rabbitmq-env.conf
EOF
  : >"$DIR/rabbitmq-env.conf"
}

amqp_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$RABBITMQ_NODE_PORT") 2>/dev/null
}

start() {
  [ -f "$DIR/env" ] || write_env
  load_env
  if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
    echo "AMQP_URL=$AMQP_URL"; return 0  # already running: starting twice is harmless
  fi
  local t0=$SECONDS
  # setsid: the node must outlive the shell (and pytest's process group signals).
  setsid "$RMQ_BIN/rabbitmq-server" >"$DIR/log/startup.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"
  # The AMQP listener opens last during boot, so an accepting port means "ready".
  wait_started rabbitmq "$DIR/log/startup.log" amqp_open "$START_TIMEOUT_S"
  echo "rabbitmq $RABBITMQ_NODENAME ready in $((SECONDS - t0))s" >&2
  echo "AMQP_URL=$AMQP_URL"
  [ -z "$MANAGEMENT_URL" ] || echo "MANAGEMENT_URL=$MANAGEMENT_URL"
}

stop_node() {
  [ -f "$DIR/env" ] || return 0
  load_env
  local pid=""
  [ -f "$DIR/server.pid" ] && pid=$(cat "$DIR/server.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # SIGTERM to the package's start script is its documented clean stop (it stops the
    # VM the way `rabbitmqctl stop` does) and saves booting a second VM for rabbitmqctl.
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" || true; break; fi
      sleep 0.1
    done
  fi
  rm -f "$DIR/server.pid"
}

crash_node() {
  # The VM writes its own OS pid to RABBITMQ_PID_FILE; SIGKILL it like a power cut would:
  # nothing is flushed, no queue is closed cleanly. Its parent start script then exits.
  load_env
  local beam script=""
  beam=$(cat "$RABBITMQ_PID_FILE")
  [ -f "$DIR/server.pid" ] && script=$(cat "$DIR/server.pid")
  kill -KILL "$beam"
  local deadline=$((SECONDS + 30))
  while kill -0 "$beam" 2>/dev/null || { [ -n "$script" ] && kill -0 "$script" 2>/dev/null; }; do
    if [ $SECONDS -ge $deadline ]; then echo "rabbitmq: VM $beam still alive after SIGKILL" >&2; exit 1; fi
    sleep 0.1
  done
  rm -f "$DIR/server.pid" "$RABBITMQ_PID_FILE"
}

stop_epmd() {
  [ -f "$DIR/env" ] || return 0
  load_env
  epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

case "$CMD" in
  start) start ;;
  stop) stop_node; stop_epmd ;;
  restart) stop_node; start ;;
  crash) crash_node ;;
  *) usage ;;
esac
