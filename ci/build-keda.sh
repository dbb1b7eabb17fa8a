#!/usr/bin/env bash
# Build (once) KEDA's operator (cmd/operator) and metrics apiserver (cmd/adapter) from the
# github.com/kedacore/keda/v2 Go module. `go install mod@ver` refuses modules with replace lines,
# so a throwaway module copies every non-local replace of KEDA's go.mod and builds from there.
# Binaries are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools/keda-$KEDA/ and rebuilt only when
# missing; a flock serialises parallel callers.
# Usage: ci/build-keda.sh [operator|adapter|webhooks|all]   (default: operator+adapter).
# Prints the bin dir on the last line.
# Env: KEDA (default v2.21.0, the version ci/keda-crds.sh uses), ASYA_TOOLS (cache dir override),
#      KEDA_BUILD_NICE (default 10: the build is long and the machine is shared).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=${GOFLAGS:--mod=mod}
KEDA=${KEDA:-v2.21.0}
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
OUT=$TOOLS/keda-$KEDA
WHAT=${1:-default}
case "$WHAT" in
  default) CMDS="operator adapter" ;;
  all) CMDS="operator adapter webhooks" ;;
  operator | adapter | webhooks) CMDS=$WHAT ;;
  *) echo "usage: $0 [operator|adapter|webhooks|all]" >&2; exit 2 ;;
esac
MOD=github.com/kedacore/keda/v2
log() { echo "[build-keda $(date -u +%T)] $*" >&2; }

missing() {
  local c
  for c in $CMDS; do [ -x "$OUT/keda-$c" ] || return 0; done
  return 1
}

mkdir -p "$TOOLS"
if ! missing; then log "keda $KEDA cached in $OUT"; echo "$OUT"; exit 0; fi
exec 9>"$TOOLS/.build-keda.lock"; flock 9
if ! missing; then log "keda $KEDA cached in $OUT (built by a parallel caller)"; echo "$OUT"; exit 0; fi

W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$W"
go mod init kedabuild >/dev/null 2>&1
modf=$(go mod download -json "$MOD@$KEDA" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
install -m0644 "$modf" upstream.mod
# Every replace with a version (local path replaces cannot apply outside KEDA's tree).
repl=$(go mod edit -json upstream.mod | python3 "$ROOT/ci/lib/go-replaces.py")
goline=$(go mod edit -json upstream.mod | python3 -c 'import json,sys;print(json.load(sys.stdin).get("Go",""))')
# shellcheck disable=SC2086
go mod edit ${goline:+-go=$goline} $repl "-require=$MOD@$KEDA"
pkgs=""
for c in $CMDS; do pkgs="$pkgs $MOD/cmd/$c@$KEDA"; done
log "go get$pkgs"
# shellcheck disable=SC2086
nice -n "${KEDA_BUILD_NICE:-10}" go get $pkgs
ldf="-s -w -X=$MOD/version.Version=${KEDA#v} -X=$MOD/version.GitCommit=$KEDA"
mkdir -p "$OUT"
for c in $CMDS; do
  if [ -x "$OUT/keda-$c" ]; then continue; fi
  t0=$(date +%s)
  log "go build cmd/$c"
  nice -n "${KEDA_BUILD_NICE:-10}" go build -trimpath -ldflags "$ldf" -o "$OUT/keda-$c.tmp" "$MOD/cmd/$c"
  mv "$OUT/keda-$c.tmp" "$OUT/keda-$c"
  log "built $OUT/keda-$c in $(($(date +%s) - t0)) s"
done
echo "$OUT"
