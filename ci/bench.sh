#!/usr/bin/env bash
# `make bench`: start a private RabbitMQ (ci/rabbitmq.sh) in a temp dir, run the data-plane
# benchmark (bench/run.py: Asya on rabbitmq + local vs. a Celery chain; table on stdout,
# JSON in bench/results/latest.json), then the operator benchmark (bench/operator_bench.py)
# when that file and its prerequisites exist; otherwise say why it was skipped; then the gateway
# benchmark (bench/gateway_bench.py: submissions/s, 1,000 SSE streams' RSS, report->SSE latency;
# JSON in bench/results/gateway.json).
# Extra arguments go to bench/run.py (e.g. ci/bench.sh --runs 5 --n 10000).
# Env: BENCH_SKIP_SCALE=1 skips the scale bench (bench/scale_bench.py); BENCH_SKIP_OPERATOR=1 skips the operator bench; BENCH_SKIP_GATEWAY=1 the gateway bench; BENCH_SKIP_CONSERVATION=1 the N=10,000 run; BENCH_PROFILE_SIDECAR=DIR profiles sidecars.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || ci/bootstrap.sh test,dev,bench,operator,gateway
T0=$SECONDS

RMQ_DIR=$(mktemp -d "${TMPDIR:-/tmp}/asya-bench-rmq.XXXXXX")
cleanup() {
  ci/rabbitmq.sh stop "$RMQ_DIR" >/dev/null 2>&1 || true
  rm -rf "$RMQ_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting a private RabbitMQ" >&2
ci/rabbitmq.sh start "$RMQ_DIR" >/dev/null
AMQP_URL=$(sed -n 's/^AMQP_URL=//p' "$RMQ_DIR/env")
BENCH_BROKER_PID=$(cat "$RMQ_DIR/server.pid")
export BENCH_BROKER_PID
export AMQP_URL

echo "== data plane: bench/run.py (rabbitmq at $AMQP_URL, local)" >&2
PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} "$PY" -m bench.run --amqp-url "$AMQP_URL" "$@"
if [ "${BENCH_SKIP_SCALE:-}" = 1 ]; then
  echo "== scale bench skipped: BENCH_SKIP_SCALE=1"
else
  # 20 actors x 1 replica, 1 actor x 8 replicas on the same broker; merged into latest.json under "scale"
  echo "== scale: bench/scale_bench.py (N=${BENCH_SCALE_N:-4000})" >&2
  PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} "$PY" -m bench.scale_bench --amqp-url "$AMQP_URL" --n "${BENCH_SCALE_N:-4000}"
fi
if [ "${BENCH_SKIP_CONSERVATION:-}" != 1 ]; then
  CN=${BENCH_CONSERVATION_N:-10000}
  echo "== conservation: N=$CN envelopes through 3 actors on RabbitMQ, 10% transient + 1% permanent failures" >&2
  # Without gateway reports by default: the same work the 0.2.0-dev baseline did, so the times
  # compare (BENCH_CONSERVATION_GATEWAY=on adds the crew's final reports and their accounting).
  (cd python && ASYA_TEST_RABBITMQ_URL=$AMQP_URL ASYA_CONSERVATION_N=$CN \
     ASYA_CONSERVATION_GATEWAY=${BENCH_CONSERVATION_GATEWAY:-off} \
     ASYA_CONSERVATION_JSON=$ROOT/bench/results/conservation.json \
     ../.venv/bin/pytest tests/crew/test_conservation.py -k rabbitmq -q -s -p no:cacheprovider --timeout 1800 \
     | grep -E "conservation on|passed|failed")
fi
# The operator and gateway benches do not use RabbitMQ: free the broker's CPU and memory first.
cleanup
trap - EXIT

operator_skip_reason() {
  [ "${BENCH_SKIP_OPERATOR:-}" = 1 ] && { echo "BENCH_SKIP_OPERATOR=1"; return; }
  [ -f bench/operator_bench.py ] || { echo "bench/operator_bench.py does not exist yet"; return; }
  local tools=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools} bin
  for bin in kube-apiserver kube-controller-manager kubectl; do
    compgen -G "$tools/k8s-v*/$bin" >/dev/null || { echo "no $bin under $tools (build it with ci/build-kube.sh)"; return; }
  done
  compgen -G "$tools/etcd-v*/etcd" >/dev/null || command -v etcd >/dev/null \
    || { echo "no etcd under $tools or on PATH (ci/build-kube.sh etcd)"; return; }
  command -v openssl >/dev/null || { echo "openssl is not installed"; return; }
  "$PY" -c 'import kopf, kubernetes, yaml' 2>/dev/null || { echo "the operator extra is not installed (ci/bootstrap.sh operator)"; return; }
}

reason=$(operator_skip_reason)
if [ -n "$reason" ]; then
  echo "== operator bench skipped: $reason"
else
  echo "== operator bench: bench/operator_bench.py" >&2
  "$PY" bench/operator_bench.py
fi
if [ "${BENCH_SKIP_GATEWAY:-}" = 1 ]; then
  echo "== gateway bench skipped: BENCH_SKIP_GATEWAY=1"
else
  # its own private PostgreSQL (ci/postgresql.sh), a real gateway process, the local transport
  echo "== gateway: bench/gateway_bench.py" >&2
  PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} "$PY" -m bench.gateway_bench
fi
echo "make bench: done in $((SECONDS - T0))s"
