#!/usr/bin/env bash
# Chart chores. crds/ stays the one source of the CRD and the operator's RBAC; the operator
# chart ships byte-identical copies (python/tests/charts proves it).
#
# Usage: ci/charts.sh sync            copy crds/ into charts/asya-operator and the operator package, dashboards/ into charts/asya (make charts)
#        ci/charts.sh test [PYTEST..] the chart tests (make charts-test): pytest python/tests/charts
#        ci/charts.sh offline [DEST]  copy of charts/ in DEST (default: a new temp dir) in which
#                                     every remote dependency (https://, oci://, @alias: KEDA) is
#                                     removed from the Chart.yaml files and the file:// ones are
#                                     built with `helm dependency build`; prints DEST on the last
#                                     line (`helm install asya DEST/asya` works with no network)
#        ci/charts.sh docs            regenerate every chart README.md with helm-docs
# Env: ASYA_CHARTS_DIR (default charts/) is the folder `offline` copies.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || PY=python3

# Removes the remote entries of a Chart.yaml's `dependencies:` as text, so the comments and
# layout that ct's yamllint checks stay as written; then proves the result parses to the
# file:// entries alone.
DROP_REMOTE='
import re, sys, textwrap, yaml
path = sys.argv[1]
text = open(path).read()
deps = (yaml.safe_load(text) or {}).get("dependencies") or []
local = [d for d in deps if str(d.get("repository", "")).startswith("file://")]
if len(local) == len(deps):
    sys.exit(0)
lines = text.splitlines(keepends=True)
start = next(i for i, l in enumerate(lines) if re.match(r"dependencies:\s*(#.*)?$", l))
end = next((j for j in range(start + 1, len(lines)) if lines[j].strip() and lines[j][0] not in " -#"), len(lines))
body = lines[start + 1 : end]
firsts = [i for i, l in enumerate(body) if re.match(r"\s*- ", l)]
indent = len(body[firsts[0]]) - len(body[firsts[0]].lstrip())
starts = [i for i in firsts if len(body[i]) - len(body[i].lstrip()) == indent]
items = [body[a:b] for a, b in zip(starts, starts[1:] + [len(body)])]
kept = [it for it in items if str(yaml.safe_load(textwrap.dedent("".join(it)))[0].get("repository", "")).startswith("file://")]
for it in items:
    if it not in kept:
        print(f"offline copy of {path}: dropped {yaml.safe_load(textwrap.dedent(chr(10).join(x.rstrip() for x in it)))[0]}", file=sys.stderr)
head = lines[: start] + ([lines[start]] if kept else ["dependencies: []\n"]) + body[: starts[0]]
new = "".join(head + [l for it in kept for l in it] + lines[end:])
assert (yaml.safe_load(new).get("dependencies") or []) == local, "offline copy: could not remove the remote dependencies"
open(path, "w").write(new)
'

sync() {
  install -D -m0644 "$ROOT/crds/asyncactor.yaml" "$ROOT/charts/asya-operator/crds/asyncactor.yaml"
  install -D -m0644 "$ROOT/crds/rbac/operator.yaml" "$ROOT/charts/asya-operator/files/operator-rbac.yaml"
  # the operator applies its own CRD at start (crds.manage): the wheel carries the same bytes
  install -D -m0644 "$ROOT/crds/asyncactor.yaml" "$ROOT/python/src/asya/operator/crds/asyncactor.yaml"
  # Helm reads no file outside the chart: the umbrella ships copies of the dashboards and alert rules
  rm -rf "$ROOT/charts/asya/files/dashboards" "$ROOT/charts/asya/files/rules"
  local f
  for f in "$ROOT"/dashboards/*.json; do install -D -m0644 "$f" "$ROOT/charts/asya/files/dashboards/$(basename "$f")"; done
  for f in "$ROOT"/dashboards/rules/*.rules.yml; do install -D -m0644 "$f" "$ROOT/charts/asya/files/rules/$(basename "$f")"; done
}

offline() {
  local dest=${1:-$(mktemp -d "${TMPDIR:-/tmp}/asya-charts-offline.XXXXXX")}
  mkdir -p "$dest"
  # every chart travels: the umbrella reaches its subcharts as file://../<name>
  cp -r "${ASYA_CHARTS_DIR:-$ROOT/charts}"/. "$dest"/
  local helm=${HELM:-helm}
  command -v "$helm" >/dev/null || eval "$("$ROOT/ci/chart-tools.sh" env)"
  local chart
  for chart in "$dest"/*/Chart.yaml; do
    "$PY" -c "$DROP_REMOTE" "$chart" || return 1
    if grep -q 'repository:' "$chart"; then
      rm -rf "$(dirname "$chart")/charts" "$(dirname "$chart")/Chart.lock"  # the lock lists the remote ones too
      "$helm" dependency build "$(dirname "$chart")" >/dev/null
    fi
  done
  echo "$dest"
}

case "${1:-}" in
  sync) sync ;;
  test) shift
    "$ROOT/ci/build-kube.sh" all >/dev/null && "$ROOT/ci/keda-crds.sh" >/dev/null   # as ci/test.d does for make test
    "$ROOT/ci/chart-tools.sh" install
    cd "$ROOT/python" && exec ../.venv/bin/pytest -p no:cacheprovider tests/charts "$@" ;;
  offline) shift; offline "$@" ;;
  docs) eval "$("$ROOT/ci/chart-tools.sh" env)"; helm-docs --chart-search-root "$ROOT/charts" ;;
  *) echo "usage: $0 sync|test [pytest args]|offline [DEST]|docs" >&2; exit 2 ;;
esac
