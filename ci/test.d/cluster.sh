#!/usr/bin/env bash
# Before the test run: the node binaries (kubelet, kube-scheduler, kube-proxy) and the pause and
# CoreDNS images of ci/cluster.sh, so a fresh machine builds them here, once, and not inside a
# test's timeout. Cached in ~/.cache/asya-tools; a warm machine returns at once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/ci/build-kube.sh" node >/dev/null
"$ROOT/ci/build-node-images.sh" >/dev/null
