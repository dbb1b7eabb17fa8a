# Shared helpers for the ci/<service>.sh scripts (sourced, not run).
# Each script keeps its state in $DIR: env (ports, URLs), server.pid, logs.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

load_env() {
  # shellcheck disable=SC1091
  set -a && . "$DIR/env" && set +a
}

# wait_started NAME LOG READY_FN TIMEOUT_S: poll READY_FN until it succeeds; fail with the
# log's tail if the process in $DIR/server.pid dies or the deadline passes.
wait_started() {
  local name=$1 log=$2 ready=$3 timeout=$4
  local deadline=$((SECONDS + timeout))
  until "$ready"; do
    if ! kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
      echo "$name exited during start; see $log" >&2; tail -20 "$log" >&2; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "$name not ready after ${timeout}s; see $log" >&2; exit 1
    fi
    sleep 0.1
  done
}

# stop_pidfile TIMEOUT_S: SIGTERM the process in $DIR/server.pid, SIGKILL after the timeout.
stop_pidfile() {
  local timeout=${1:-15}
  [ -f "$DIR/server.pid" ] || return 0
  local pid
  pid=$(cat "$DIR/server.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
      sleep 0.1
    done
  fi
  rm -f "$DIR/server.pid"
}
