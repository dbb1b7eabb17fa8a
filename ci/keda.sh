#!/usr/bin/env bash
# KEDA on a real cluster (ci/cluster.sh), no registry:
#
#   ci/keda.sh install KUBECONFIG     build (cached) the binaries and images, import the images into the
#                                     node's containerd, apply ci/keda/ + the CRDs, wait for the
#                                     external metrics APIService to be Available (prints how long)
#   ci/keda.sh uninstall KUBECONFIG   remove everything install created (KEDA_KEEP_CRDS=1 keeps the CRDs)
#   ci/keda.sh images                 build the images only (localhost/keda:V, localhost/keda-metrics-apiserver:V)
#   ci/keda.sh operator-local KUBECONFIG   run the operator as a host process (envtest control planes
#                                     without a kubelet); ports on 127.0.0.1, Ctrl-C stops it
#
# Certificates: one CA and one serving+client certificate for keda-operator and
# keda-metrics-apiserver (operator<->metrics apiserver mTLS gRPC, and the aggregated API's serving
# cert). They are made once by openssl in $KEDA_PKI (default: keda-pki next to KUBECONFIG) and
# reused, so re-installs are idempotent; there is no in-cluster rotation.
# Env: KEDA (default v2.21.0, as ci/keda-crds.sh), CONTAINERD_ADDRESS (when the cluster is not
#      ci/cluster.sh's), KEDA_TIMEOUT (seconds to wait for the APIService, default 300).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEDA=${KEDA:-v2.21.0}
V=${KEDA#v}
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
TIMEOUT=${KEDA_TIMEOUT:-300}
NS=keda
log() { echo "[keda $(date -u +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

kubectl_bin() {
  local k=$TOOLS/k8s-${K8S:-v1.34.4}/kubectl
  [ -x "$k" ] || "$ROOT/ci/build-kube.sh" apiserver >/dev/null
  [ -x "$k" ] || die "no kubectl at $k (ci/build-kube.sh)"
  echo "$k"
}

bins() { BIN=$("$ROOT/ci/build-keda.sh" "$@" | tail -1); }

# --- images -----------------------------------------------------------------------------------
images() {
  bins
  CONTAINERS_CONF=$("$ROOT/ci/images.sh" env | sed 's/^CONTAINERS_CONF=//'); export CONTAINERS_CONF
  if ! podman image exists localhost/asya-base:bookworm; then
    log "no localhost/asya-base:bookworm yet: building the runtime image makes it"
    "$ROOT/ci/images.sh" build runtime >/dev/null
  fi
  mkdir -p "$TOOLS/keda-$KEDA/oci"
  local pair name bin tag sum tar ctx
  for pair in keda:keda-operator keda-metrics-apiserver:keda-adapter; do
    name=${pair%%:*} bin=${pair#*:} tag=localhost/${pair%%:*}:$V
    # the image is rebuilt when the binary or the Containerfile changes
    sum=$(cat "$BIN/$bin" "$ROOT/ci/keda/Containerfile" | sha256sum | cut -c1-16)
    tar=$TOOLS/keda-$KEDA/oci/$name-$sum.tar
    if [ ! -s "$tar" ] || ! podman image exists "$tag"; then
      ctx=$(mktemp -d)
      command install -m0755 "$BIN/$bin" "$ctx/$([ "$bin" = keda-operator ] && echo keda || echo "$bin")"
      podman build --quiet --pull=never --network=none -f "$ROOT/ci/keda/Containerfile" \
        --build-arg "BIN=$([ "$bin" = keda-operator ] && echo keda || echo "$bin")" \
        --label "sh.asya.image.inputs=$sum" -t "$tag" "$ctx" >/dev/null
      rm -rf "$ctx"
      find "$TOOLS/keda-$KEDA/oci" -name "$name-*.tar" -delete
      podman save --quiet --format oci-archive -o "$tar.tmp" "$tag" && mv "$tar.tmp" "$tar"
      log "built $tag ($(du -m "$tar" | cut -f1) MB)"
    fi
    TARS+=("$tar")
  done
}

load_images() {
  TARS=()
  images
  local t
  if [ -z "${CONTAINERD_ADDRESS:-}" ] && "$ROOT/ci/cluster.sh" env >/dev/null 2>&1; then
    "$ROOT/ci/cluster.sh" load "${TARS[@]}"
  else
    [ -n "${CONTAINERD_ADDRESS:-}" ] || die "set CONTAINERD_ADDRESS (no ci/cluster.sh cluster is up)"
    for t in "${TARS[@]}"; do
      ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images import --all-platforms "$t" >/dev/null
      log "imported ${t##*/}"
    done
  fi
}

# --- certificates -----------------------------------------------------------------------------
pki() {
  P=${KEDA_PKI:-$(dirname "$KCFG")/keda-pki}
  if [ -s "$P/tls.crt" ] && [ -s "$P/ca.crt" ] && [ -s "$P/tls.key" ]; then return; fi
  mkdir -p "$P" && chmod 700 "$P"
  local san="" svc
  for svc in keda-operator keda-metrics-apiserver; do
    san="$san,DNS:$svc,DNS:$svc.$NS,DNS:$svc.$NS.svc,DNS:$svc.$NS.svc.cluster.local"
  done
  (
    cd "$P"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt -subj "/O=KEDAORG/CN=KEDA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj "/O=KEDAORG/CN=keda-operator" 2>/dev/null
    # serverAuth: gRPC server and aggregated API; clientAuth: the metrics apiserver dials the operator
    printf 'subjectAltName=%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' \
      "${san#,}" >tls.ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out tls.crt -extfile tls.ext 2>/dev/null
    rm -f tls.csr tls.ext ca.srl
    chmod 600 ca.key tls.key
  )
  log "certificates in $P"
}

render() {  # manifest -> stdout with the version and CA bundle filled in
  sed -e "s|@KEDA_VERSION@|$V|g" -e "s|@CA_BUNDLE@|$(base64 -w0 <"$P/ca.crt")|g" "$1"
}

# --- install / uninstall ----------------------------------------------------------------------
do_install() {
  local t0 crds k
  t0=$(date +%s.%N)
  k=$(kubectl_bin); K() { "$k" --kubeconfig "$KCFG" "$@"; }
  load_images
  pki
  crds=$("$ROOT/ci/keda-crds.sh" | tail -1)
  K apply --server-side --force-conflicts -f "$crds" >/dev/null  # ScaledJob's CRD is too big for client-side apply
  K wait --for=condition=Established --timeout=60s -f "$crds" >/dev/null
  K apply -f "$ROOT/ci/keda/namespace.yaml" >/dev/null
  K -n $NS create secret generic kedaorg-certs --from-file="$P/ca.crt" --from-file="$P/tls.crt" \
    --from-file="$P/tls.key" --dry-run=client -o yaml | K apply -f - >/dev/null
  K apply -f "$ROOT/ci/keda/rbac.yaml" >/dev/null
  render "$ROOT/ci/keda/operator.yaml" | K apply -f - >/dev/null
  render "$ROOT/ci/keda/metrics-apiserver.yaml" | K apply -f - >/dev/null
  local t1; t1=$(date +%s.%N)
  log "applied; waiting for the deployments and the APIService (timeout ${TIMEOUT}s)"
  if ! K -n $NS rollout status deploy/keda-operator deploy/keda-metrics-apiserver --timeout="${TIMEOUT}s" >&2 ||
    ! K wait --for=condition=Available --timeout="${TIMEOUT}s" apiservice/v1beta1.external.metrics.k8s.io >/dev/null; then
    K -n $NS get pods -o wide >&2 || true
    K get apiservice v1beta1.external.metrics.k8s.io -o jsonpath='{.status.conditions}' >&2 || true
    K -n $NS logs deploy/keda-operator --tail=30 >&2 || true
    K -n $NS logs deploy/keda-metrics-apiserver --tail=30 >&2 || true
    die "KEDA did not become available within ${TIMEOUT}s"
  fi
  local t2; t2=$(date +%s.%N)
  printf 'KEDA %s available: APIService v1beta1.external.metrics.k8s.io Available %.1f s after apply (%.1f s total)\n' \
    "$KEDA" "$(awk "BEGIN{print $t2 - $t1}")" "$(awk "BEGIN{print $t2 - $t0}")"
}

do_uninstall() {
  local k; k=$(kubectl_bin); K() { "$k" --kubeconfig "$KCFG" "$@"; }
  P=${KEDA_PKI:-$(dirname "$KCFG")/keda-pki}
  # the APIService first: an Unavailable aggregated API makes discovery (and namespace deletion) slow
  K delete apiservice v1beta1.external.metrics.k8s.io --ignore-not-found >/dev/null
  K delete -f "$ROOT/ci/keda/rbac.yaml" --ignore-not-found >/dev/null
  K delete namespace $NS --ignore-not-found --timeout="${TIMEOUT}s" >/dev/null
  if [ "${KEDA_KEEP_CRDS:-}" != 1 ]; then
    K delete -f "$("$ROOT/ci/keda-crds.sh" | tail -1)" --ignore-not-found >/dev/null
  fi
  log "KEDA removed"
}

# The operator outside a pod (an envtest control plane has no kubelet). Ports on loopback only.
operator_local() {
  bins operator
  local k; k=$(kubectl_bin)
  "$k" --kubeconfig "$KCFG" apply --server-side --force-conflicts -f "$("$ROOT/ci/keda-crds.sh" | tail -1)" >/dev/null
  "$k" --kubeconfig "$KCFG" create namespace $NS --dry-run=client -o yaml | "$k" --kubeconfig "$KCFG" apply -f - >/dev/null
  P=${KEDA_PKI:-$(dirname "$KCFG")/keda-pki}
  pki
  KUBECONFIG=$KCFG WATCH_NAMESPACE="" KEDA_CLUSTER_OBJECT_NAMESPACE=$NS POD_NAMESPACE=$NS exec "$BIN/keda-operator" \
    --enable-cert-rotation=false --enable-webhook-patching=false --enable-apiservice-patching=false \
    --cert-dir="$P" --metrics-bind-address=127.0.0.1:${KEDA_METRICS_PORT:-0} \
    --health-probe-bind-address=127.0.0.1:${KEDA_PROBE_PORT:-0} \
    --metrics-service-bind-address=127.0.0.1:${KEDA_GRPC_PORT:-9666} --zap-encoder=console
}

cmd=${1:-}
case "$cmd" in
  install | uninstall | operator-local)
    [ $# -eq 2 ] || die "usage: $0 $cmd KUBECONFIG"
    KCFG=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    [ -r "$KCFG" ] || die "cannot read kubeconfig $KCFG"
    case "$cmd" in install) do_install ;; uninstall) do_uninstall ;; operator-local) operator_local ;; esac
    ;;
  images) TARS=(); images; printf '%s\n' "${TARS[@]}" ;;
  *) echo "usage: $0 install|uninstall|operator-local KUBECONFIG | images" >&2; exit 2 ;;
esac
