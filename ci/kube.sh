#!/usr/bin/env bash
# Start a throwaway control plane (etcd + kube-apiserver + kube-controller-manager, envtest
# style, no kubelet) with the AsyncActor and KEDA CRDs, for trying the operator by hand:
#   ci/kube.sh            # prints `export KUBECONFIG=...`; Ctrl-C stops and cleans up
#   KUBECONFIG=... .venv/bin/python -m asya.operator   # in another shell (needs ASYA_OPERATOR_CONFIG)
# The operator tests start the same thing as a pytest session fixture.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/ci/build-kube.sh" all >/dev/null
exec "$ROOT/.venv/bin/python" -c "import signal; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}); import sys; sys.path.insert(0, '$ROOT/python/tests/operator'); import controlplane; controlplane._serve()"
