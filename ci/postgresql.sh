#!/usr/bin/env bash
# Private PostgreSQL server for tests and local runs, from Debian's postgresql package.
#
#   ci/postgresql.sh start DIR     init (first time) and start a server; prints DSN=... and writes DIR/env
#   ci/postgresql.sh stop DIR      stop it (fast shutdown: open sessions are cut) and delete its cluster
#   ci/postgresql.sh stop-keep DIR stop it but keep the data, for a later `start DIR` (an outage)
#   ci/postgresql.sh restart DIR   stop + start on the same port, password and data
#   ci/postgresql.sh url DIR       print the DSN of the server in DIR
#
# The server listens on a free 127.0.0.1 port only (no Unix socket), with scram-sha-256
# password auth for the superuser `asya` and a database `asya`, so the DSN is
# postgresql://asya:<random password>@127.0.0.1:<port>/asya.
# initdb and postgres refuse to run as root. As root we run them as an unprivileged
# user (the package's `postgres` account, else `nobody`) through setpriv; the cluster
# then cannot live under DIR (pytest's temp dirs are 0700 root), so it lives in its own
# mktemp directory owned by that user, recorded in DIR/env and removed by `stop`.
# Called by the `postgres_server` pytest fixture (python/tests/fixtures/postgres.py).
set -euo pipefail

START_TIMEOUT_S=${POSTGRES_START_TIMEOUT_S:-60}

usage() { echo "usage: $0 start|stop|stop-keep|restart|url DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)

# shellcheck source=lib/services.sh
. "$(dirname "$0")/lib/services.sh"

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || { echo "PostgreSQL binaries not found under /usr/lib/postgresql: apt-get install postgresql" >&2; exit 1; }
  echo "$bin"
}

run_as() {
  # Run "$@" as the cluster's owner (ourselves unless we are root).
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups -- "$@"
  else
    "$@"
  fi
}

pick_user() {
  if [ "$(id -u)" != 0 ]; then id -un; return; fi
  if id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}

write_env() {
  local port password data user
  user=$(pick_user)
  port=$(free_port)
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  if [ "$(id -u)" = 0 ]; then
    data=$(mktemp -d /tmp/asya-postgres.XXXXXX)
    chown "$user:$(id -g "$user")" "$data"
  else
    data=$DIR/cluster
    mkdir -p "$data"
  fi
  chmod 700 "$data"
  umask 077
  cat >"$DIR/env" <<EOF
PG_BIN=$(pg_bin)
PG_USER=$user
PG_PORT=$port
PG_PASSWORD=$password
PG_DATA=$data/data
PG_HOME=$data
DSN=postgresql://asya:$password@127.0.0.1:$port/asya
EOF
}

init_cluster() {
  local pwfile=$PG_HOME/pwfile
  (umask 077; echo "$PG_PASSWORD" >"$pwfile")
  [ "$(id -u)" != 0 ] || chown "$PG_USER" "$pwfile"
  run_as "$PG_BIN/initdb" -D "$PG_DATA" -U asya --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_HOME/initdb.log" 2>&1 \
    || { tail -20 "$PG_HOME/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
  cat >>"$PG_DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
log_destination = 'stderr'
logging_collector = off
EOF
}

pg_ready() {
  PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U asya -d postgres -Atqc 'select 1' >/dev/null 2>&1
}

running() {
  [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null
}

start() {
  [ -f "$DIR/env" ] || write_env
  load_env
  if running; then echo "DSN=$DSN"; return 0; fi  # starting twice is harmless
  [ -f "$PG_DATA/PG_VERSION" ] || init_cluster
  local t0=$SECONDS
  # setsid: the server must outlive the shell and pytest's process-group signals.
  # The postmaster itself runs in the foreground of its setsid so its pid is ours to watch.
  setsid bash -c "$(declare -f run_as); PG_USER=$PG_USER; run_as '$PG_BIN/postgres' -D '$PG_DATA'" \
    >>"$PG_HOME/server.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"
  wait_started postgresql "$PG_HOME/server.log" pg_ready "$START_TIMEOUT_S"
  if [ "$(PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U asya -d postgres -Atqc \
      "select count(*) from pg_database where datname = 'asya'")" = 0 ]; then
    PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U asya -d postgres -qc 'create database asya' >/dev/null
  fi
  echo "postgresql ready on port $PG_PORT in $((SECONDS - t0))s" >&2
  echo "DSN=$DSN"
}

stop_server() {
  # $1: the signal. INT is PostgreSQL's "fast" shutdown (sessions ended, a checkpoint written);
  # QUIT is "immediate" (no checkpoint: for a cluster about to be deleted).
  local signal=${1:-INT}
  [ -f "$DIR/env" ] || return 0
  load_env
  local pid
  pid=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
      sleep 0.1
    done
  fi
  if running; then
    local deadline=$((SECONDS + 10))
    while running && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  fi
  rm -f "$DIR/server.pid"
}

case "$CMD" in
  start) start ;;
  stop)
    stop_server QUIT
    # The cluster is throwaway; the env file stays so `url` still answers.
    if [ -f "$DIR/env" ]; then load_env; [ -z "${PG_HOME:-}" ] || rm -rf "$PG_HOME"; fi
    ;;
  stop-keep) stop_server ;;
  restart) stop_server; start ;;
  url) load_env; echo "DSN=$DSN" ;;
  *) usage ;;
esac
