#!/usr/bin/env bash
# Before the test run: make sure the control-plane binaries (kube-apiserver,
# kube-controller-manager, kubectl, etcd) and KEDA's CRDs are present. Cached outside
# git (~/.cache/asya-tools, .tools/); a fresh machine builds them from the Go module
# proxy (10-25 min on 2 cores), a warm one returns at once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/ci/build-kube.sh" all >/dev/null
"$ROOT/ci/keda-crds.sh" >/dev/null
