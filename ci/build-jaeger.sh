#!/usr/bin/env bash
# Build (once) Jaeger v2 (cmd/jaeger, an OpenTelemetry Collector distribution) from the
# github.com/jaegertracing/jaeger Go module, in a throwaway module that copies its replace lines
# (`go install` refuses modules with replaces). Cached in ~/.cache/asya-tools/jaeger-$JAEGER/.
# Also writes config-loopback.yaml there: OTLP/HTTP receiver + in-memory storage + query API, every
# port on 127.0.0.1 and chosen by env (JAEGER_OTLP_HTTP_PORT, JAEGER_QUERY_PORT, ...).
# Usage: ci/build-jaeger.sh   Prints the dir on the last line. Run:
#   JAEGER_OTLP_HTTP_PORT=14318 JAEGER_QUERY_PORT=16686 $DIR/jaeger --config $DIR/config-loopback.yaml
#   curl -s http://127.0.0.1:16686/api/traces/<trace id hex>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=${GOFLAGS:--mod=mod}
JAEGER=${JAEGER:-v1.76.0}
MOD=github.com/jaegertracing/jaeger
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
OUT=$TOOLS/jaeger-$JAEGER
log() { echo "[build-jaeger $(date -u +%T)] $*" >&2; }

write_config() {
  cat >"$OUT/config-loopback.yaml.tmp" <<'EOF'
# Jaeger v2 on loopback only: OTLP/HTTP in, memory storage, query HTTP API out.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: "127.0.0.1:${env:JAEGER_QUERY_PORT:-16686}"
    grpc:
      endpoint: "127.0.0.1:${env:JAEGER_QUERY_GRPC_PORT:-16685}"
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: "127.0.0.1:${env:JAEGER_HEALTH_PORT:-13133}"
receivers:
  otlp:
    protocols:
      http:
        endpoint: "127.0.0.1:${env:JAEGER_OTLP_HTTP_PORT:-4318}"
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
EOF
  mv "$OUT/config-loopback.yaml.tmp" "$OUT/config-loopback.yaml"
}

mkdir -p "$TOOLS"
exec 9>"$TOOLS/.build-jaeger.lock"; flock 9
if [ ! -x "$OUT/jaeger" ]; then
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  cd "$W"
  go mod init jaegerbuild >/dev/null 2>&1
  modf=$(go mod download -json "$MOD@$JAEGER" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  install -m0644 "$modf" upstream.mod
  repl=$(go mod edit -json upstream.mod | python3 "$ROOT/ci/lib/go-replaces.py")
  # shellcheck disable=SC2086
  go mod edit $repl "-require=$MOD@$JAEGER"
  log "go get $MOD/cmd/jaeger@$JAEGER"
  nice -n "${JAEGER_BUILD_NICE:-10}" go get "$MOD/cmd/jaeger@$JAEGER"
  t0=$(date +%s)
  mkdir -p "$OUT"
  nice -n "${JAEGER_BUILD_NICE:-10}" go build -trimpath \
    -ldflags "-s -w -X=$MOD/internal/version.latestVersion=$JAEGER" -o "$OUT/jaeger.tmp" "$MOD/cmd/jaeger"
  mv "$OUT/jaeger.tmp" "$OUT/jaeger"
  log "built $OUT/jaeger in $(($(date +%s) - t0)) s"
fi
[ -s "$OUT/config-loopback.yaml" ] || write_config
echo "$OUT"
