#!/usr/bin/env bash
# Private ElasticMQ (SQS-compatible) server for tests and local runs, on the machine's Java.
#
#   ci/elasticmq.sh start DIR   start ElasticMQ with its config in DIR; prints SQS_URL=... and writes DIR/env
#   ci/elasticmq.sh stop DIR    stop it (SIGTERM, then SIGKILL after 15 s)
#
# The server's runtime classpath is resolved once from Maven Central with the throwaway
# POM in ci/elasticmq/pom.xml (maven-dependency-plugin copy-dependencies) and cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools/elasticmq-<version>/lib. ElasticMQ 1.7.1
# (Scala 2.13, Pekko) runs on Java 17. The REST port is a free 127.0.0.1 port chosen on
# first start and reused by later starts of the same DIR; node-address uses the same
# port, because queue URLs are built from it. Called by python/tests/fixtures/sqs.py.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ELASTICMQ_VERSION=${ELASTICMQ_VERSION:-1.7.1}
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools/elasticmq-$ELASTICMQ_VERSION
START_TIMEOUT_S=${ELASTICMQ_START_TIMEOUT_S:-90}

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)

classpath() {
  if [ ! -f "$CACHE/.complete" ]; then
    mkdir -p "$CACHE"
    echo "resolving ElasticMQ $ELASTICMQ_VERSION from Maven Central into $CACHE" >&2
    mvn -q -B -f "$ROOT/ci/elasticmq/pom.xml" -Delasticmq.version="$ELASTICMQ_VERSION" \
      "$DEP_PLUGIN:copy-dependencies" -DoutputDirectory="$CACHE/lib" -DincludeScope=runtime >&2
    touch "$CACHE/.complete"
  fi
  echo "$CACHE/lib/*"
}

# shellcheck source=lib/services.sh
. "$(dirname "$0")/lib/services.sh"

write_env() {
  local port
  port=$(free_port)
  cat >"$DIR/elasticmq.conf" <<EOF
include classpath("application.conf")
node-address { protocol = http, host = "127.0.0.1", port = $port, context-path = "" }
rest-sqs { enabled = true, bind-port = $port, bind-hostname = "127.0.0.1", sqs-limits = strict }
generate-node-address = false
aws { region = us-east-1, accountId = "000000000000" }
EOF
  cat >"$DIR/env" <<EOF
SQS_PORT=$port
SQS_URL=http://127.0.0.1:$port
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-asya-test-key}
AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-asya-test-secret}
AWS_REGION=${AWS_REGION:-us-east-1}
EOF
}


sqs_up() {
  curl -sf -m 2 -o /dev/null "$SQS_URL/?Action=ListQueues" 2>/dev/null
}

start() {
  [ -f "$DIR/env" ] || write_env
  load_env
  if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
    echo "SQS_URL=$SQS_URL"; return 0
  fi
  local cp t0=$SECONDS
  cp=$(classpath)
  # setsid: the JVM must outlive the shell that started it (and pytest's signals)
  setsid java -Xms64m -Xmx384m -XX:+UseSerialGC \
    -Dconfig.file="$DIR/elasticmq.conf" -cp "$cp" org.elasticmq.server.Main \
    >"$DIR/elasticmq.log" 2>&1 </dev/null &
  echo $! >"$DIR/server.pid"
  wait_started "ElasticMQ" "$DIR/elasticmq.log" sqs_up "$START_TIMEOUT_S"
  echo "elasticmq $ELASTICMQ_VERSION ready on $SQS_URL in $((SECONDS - t0))s" >&2
  echo "SQS_URL=$SQS_URL"
}

stop() {
  stop_pidfile "15"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
