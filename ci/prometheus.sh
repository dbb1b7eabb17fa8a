#!/usr/bin/env bash
# Private Prometheus server for tests, from the Debian prometheus package (ci/apt-packages.txt).
#
#   ci/prometheus.sh start DIR SCRAPE_CONFIG   start with data in DIR/data on a free 127.0.0.1 port;
#                                              prints PROMETHEUS_URL=... and writes DIR/env
#   ci/prometheus.sh stop DIR                  stop it (SIGTERM, SIGKILL after 15 s)
#
# SCRAPE_CONFIG is a YAML file holding `scrape_configs:` (and optionally rule_files:); this
# script puts a global section with a 1 s scrape and evaluation interval in front of it, so
# tests see fresh samples within a second or two. Retention is one hour: the data dir is a temp dir.
set -euo pipefail

PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
START_TIMEOUT_S=${PROMETHEUS_START_TIMEOUT_S:-30}
SCRAPE_INTERVAL=${PROMETHEUS_SCRAPE_INTERVAL:-1s}

usage() { echo "usage: $0 start DIR SCRAPE_CONFIG | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)

# shellcheck source=lib/services.sh
. "$(dirname "$0")/lib/services.sh"

ready() { curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; }

start() {
  local scrape=${1:?$(usage)}
  [ -x "$PROMETHEUS_BIN" ] || { echo "prometheus: $PROMETHEUS_BIN missing (ci/apt.sh prometheus)" >&2; exit 1; }
  [ -f "$scrape" ] || { echo "prometheus: scrape config $scrape not found" >&2; exit 1; }
  if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
    load_env; echo "PROMETHEUS_URL=$PROMETHEUS_URL"; return 0
  fi
  local port
  port=$(free_port)
  mkdir -p "$DIR/data"
  {
    printf 'global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n' \
      "$SCRAPE_INTERVAL" "$SCRAPE_INTERVAL" "$SCRAPE_INTERVAL"
    cat "$scrape"
  } >"$DIR/prometheus.yml"
  printf 'PROMETHEUS_PORT=%s\nPROMETHEUS_URL=http://127.0.0.1:%s/\n' "$port" "$port" >"$DIR/env"
  load_env
  local t0=$SECONDS
  setsid "$PROMETHEUS_BIN" --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time=1h --web.listen-address="127.0.0.1:$port" \
    --web.enable-lifecycle --log.level=warn >"$DIR/prometheus.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"
  wait_started prometheus "$DIR/prometheus.log" ready "$START_TIMEOUT_S"
  echo "prometheus ready in $((SECONDS - t0))s on $PROMETHEUS_URL" >&2
  echo "PROMETHEUS_URL=$PROMETHEUS_URL"
}

case "$CMD" in
  start) start "${3:-}" ;;
  stop) stop_pidfile 15; rm -f "$DIR/server.pid" ;;
  *) usage ;;
esac
