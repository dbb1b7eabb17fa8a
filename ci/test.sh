#!/usr/bin/env bash
# Run every test. Services (RabbitMQ, S3, SQS, kube-apiserver, ...) are started by
# session fixtures through the ci/*.sh scripts, on free loopback ports with temp
# data dirs, and stopped when the session ends.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ci/apt.sh $(grep -v '^#' ci/apt-packages.txt | xargs)
ci/bootstrap.sh test,dev,bench,operator,gateway
for pre in ci/test.d/*.sh; do [ -e "$pre" ] && bash "$pre"; done
cd python
../.venv/bin/pytest -p no:cacheprovider "$@"
