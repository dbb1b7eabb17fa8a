#!/usr/bin/env bash
# Before the test run: Jaeger v2 for the tracing proof (python/tests/observability/test_tracing.py),
# built once from the Go module proxy and cached in ~/.cache/asya-tools (about 12 minutes cold on 2 cores).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/ci/build-jaeger.sh" >/dev/null
