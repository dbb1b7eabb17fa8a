#!/usr/bin/env bash
# Build (once) the Kubernetes control-plane binaries the operator tests need:
# kube-apiserver, kube-controller-manager, kubectl (from the k8s.io/kubernetes Go module,
# staging modules replaced by their published v0.X.Y tags) and etcd (go.etcd.io/etcd/server/v3).
# Binaries are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools/ and rebuilt only when missing.
# `node` adds what ci/cluster.sh runs on top: kubelet, kube-scheduler, kube-proxy (same module set).
# Usage: ci/build-kube.sh [apiserver|etcd|node|all]   (default all = etcd + apiserver). Prints the bin dir on the last line.
# Env: K8S (default v1.34.4), ETCD (default v3.6.16), ASYA_TOOLS (cache dir override).
set -euo pipefail
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
K8S=${K8S:-v1.34.4}
ETCD=${ETCD:-v3.6.16}
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
WHAT=${1:-all}
K8S_OUT=$TOOLS/k8s-$K8S
ETCD_OUT=$TOOLS/etcd-$ETCD
mkdir -p "$TOOLS"
exec 9>"$TOOLS/.build.lock"; flock 9   # parallel callers (pytest-xdist workers) wait for one build

CONTROL=(kube-apiserver kubectl kube-controller-manager)
NODE=(kubelet kube-scheduler kube-proxy)

log() { echo "[build-kube $(date -u +%T)] $*" >&2; }

build_k8s() {
  local cmds=("$@") missing=() c
  for c in "${cmds[@]}"; do [ -x "$K8S_OUT/$c" ] || missing+=("$c"); done
  if [ ${#missing[@]} -eq 0 ]; then
    log "k8s $K8S (${cmds[*]}) cached in $K8S_OUT"; return 0
  fi
  local stg="v0.${K8S#v1.}" minor
  minor=$(echo "$K8S" | cut -d. -f2)
  local w; w=$(mktemp -d); trap 'rm -rf "$w"' RETURN
  (
    cd "$w"
    go mod init k8sbuild >/dev/null 2>&1
    local modf repl
    modf=$(go mod download -json "k8s.io/kubernetes@$K8S" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
    repl=$(python3 - "$modf" "$stg" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
for m in sorted(set(re.findall(r'^\s*(k8s\.io/[A-Za-z0-9._-]+) v0\.0\.0\s*$', src, re.M))):
    print(f"-replace={m}={m}@{sys.argv[2]}")
PY
)
    # shellcheck disable=SC2086
    go mod edit -godebug=default=go1.24 $repl "-require=k8s.io/kubernetes@$K8S"
    log "go get k8s.io/kubernetes@$K8S"
    local gets=()
    for c in "${missing[@]}"; do gets+=("k8s.io/kubernetes/cmd/$c@$K8S"); done
    go get "${gets[@]}"
    local v=k8s.io/component-base/version
    local ldf="-s -w -X $v.gitVersion=$K8S -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=$(date -u +%FT%TZ) -X k8s.io/client-go/pkg/version.gitVersion=$K8S -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    mkdir -p "$K8S_OUT.tmp"
    for cmd in "${missing[@]}"; do
      log "go build $cmd"
      go build -trimpath -ldflags "$ldf" -o "$K8S_OUT.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
      mkdir -p "$K8S_OUT" && mv "$K8S_OUT.tmp/$cmd" "$K8S_OUT/$cmd"
      log "built $K8S_OUT/$cmd"
    done
    rmdir "$K8S_OUT.tmp" 2>/dev/null || true
  )
}

build_etcd() {
  if [ -x "$ETCD_OUT/etcd" ]; then log "etcd $ETCD cached"; return 0; fi
  local w; w=$(mktemp -d); trap 'rm -rf "$w"' RETURN
  if (
    cd "$w"
    go mod init etcdbuild >/dev/null 2>&1
    log "go get go.etcd.io/etcd/server/v3@$ETCD"
    go get "go.etcd.io/etcd/server/v3@$ETCD"
    mkdir -p "$ETCD_OUT"
    go build -trimpath -ldflags "-s -w" -o "$ETCD_OUT/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$ETCD_OUT/etcd.tmp" "$ETCD_OUT/etcd"
  ); then log "built $ETCD_OUT/etcd"
  else log "etcd build failed; tests fall back to /usr/bin/etcd (Debian etcd-server)"; fi
}

case "$WHAT" in
  etcd) build_etcd ;;
  apiserver|k8s) build_k8s "${CONTROL[@]}" ;;
  node) build_k8s "${CONTROL[@]}" "${NODE[@]}" ;;
  all) build_etcd; build_k8s "${CONTROL[@]}" ;;
  *) echo "usage: $0 [apiserver|etcd|node|all]" >&2; exit 2 ;;
esac
echo "$TOOLS"
