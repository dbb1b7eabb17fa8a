#!/usr/bin/env bash
# Fetch KEDA's CRDs (ScaledObject, TriggerAuthentication, ...) from the KEDA Go module
# (config/crd/bases) into an ignored folder; never committed. Cached: re-fetched only when missing.
# Usage: ci/keda-crds.sh [DEST]   (default .tools/keda-crds-$KEDA). Prints DEST on the last line.
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEDA=${KEDA:-v2.21.0}
DEST=${1:-$ROOT/.tools/keda-crds-$KEDA}
if ! ls "$DEST"/keda.sh_scaledobjects.yaml >/dev/null 2>&1; then
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  cd "$W" && go mod init kedacrds >/dev/null 2>&1
  KD=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$DEST"
  install -m0644 "$KD"/config/crd/bases/*.yaml "$DEST"/   # the module cache is read-only
fi
echo "$DEST"
