#!/usr/bin/env bash
# Build the two images every node of ci/cluster.sh needs and no registry serves here:
#   localhost/asya-pause:<hash>       the pod sandbox (ci/node/pause.go, static Go binary, FROM scratch)
#   localhost/asya-coredns:<version>  CoreDNS with the plugins the cluster uses (ci/node/coredns.go)
# Binaries and OCI archives are cached in ~/.cache/asya-tools keyed by version / source hash.
# Usage: ci/build-node-images.sh   Prints "PAUSE_IMAGE=... PAUSE_TAR=... COREDNS_IMAGE=... COREDNS_TAR=...".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
COREDNS=${COREDNS:-v1.15.0}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$TOOLS/node-images"
exec 9>"$TOOLS/.node-images.lock"; flock 9
log() { echo "[node-images $(date -u +%T)] $*" >&2; }
CONTAINERS_CONF=$("$ROOT/ci/images.sh" env | sed 's/^CONTAINERS_CONF=//'); export CONTAINERS_CONF

# go build $3 (package main source) in a throwaway module requiring $2 (may be empty) into $1
go_build() {
  local out=$1 req=$2 src=$3 w
  w=$(mktemp -d)
  cp "$src" "$w/main.go"
  (
    cd "$w" && go mod init nodebuild >/dev/null 2>&1
    if [ -n "$req" ]; then go get "$req" >/dev/null 2>&1 || go get "$req"; go mod tidy >/dev/null; fi
    go build -trimpath -ldflags "-s -w" -o "$out.tmp" .
  )
  mv "$out.tmp" "$out"; rm -rf "$w"
}

# image $1 (tag) from binary $2 as /$3, run as $4, saved to $5
image_from() {
  local tag=$1 bin=$2 name=$3 user=$4 tar=$5 ctx
  if [ -s "$tar" ]; then return; fi
  ctx=$(mktemp -d)
  cp "$bin" "$ctx/$name"
  printf 'FROM scratch\nCOPY %s /%s\nUSER %s\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$user" "$name" >"$ctx/Dockerfile"
  podman build --quiet --pull=never --network=none -t "$tag" "$ctx" >/dev/null
  podman save --quiet --format oci-archive -o "$tar.tmp" "$tag"
  mv "$tar.tmp" "$tar"; rm -rf "$ctx"
  log "built $tag -> $tar"
}

phash=$(sha256sum "$ROOT/ci/node/pause.go" | cut -c1-12)
pbin=$TOOLS/pause-$phash/pause
if [ ! -x "$pbin" ]; then mkdir -p "${pbin%/*}"; log "go build pause"; go_build "$pbin" "" "$ROOT/ci/node/pause.go"; fi
PAUSE_IMAGE=localhost/asya-pause:$phash
PAUSE_TAR=$TOOLS/node-images/pause-$phash.tar
image_from "$PAUSE_IMAGE" "$pbin" pause 65535:65535 "$PAUSE_TAR"

chash=$(sha256sum "$ROOT/ci/node/coredns.go" | cut -c1-8)
cbin=$TOOLS/coredns-$COREDNS-$chash/coredns
if [ ! -x "$cbin" ]; then
  mkdir -p "${cbin%/*}"; log "go build coredns $COREDNS (a few minutes cold)"
  go_build "$cbin" "github.com/coredns/coredns@$COREDNS" "$ROOT/ci/node/coredns.go"
fi
COREDNS_IMAGE=localhost/asya-coredns:${COREDNS#v}-$chash
COREDNS_TAR=$TOOLS/node-images/coredns-$COREDNS-$chash.tar
image_from "$COREDNS_IMAGE" "$cbin" coredns 65534:65534 "$COREDNS_TAR"
echo "PAUSE_IMAGE=$PAUSE_IMAGE PAUSE_TAR=$PAUSE_TAR COREDNS_IMAGE=$COREDNS_IMAGE COREDNS_TAR=$COREDNS_TAR"
