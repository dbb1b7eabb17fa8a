#!/usr/bin/env bash
# A real one-node Kubernetes on this machine, no Docker and no registry:
# etcd, kube-apiserver (aggregation layer configured), controller-manager, scheduler,
# containerd 1.6 + runc (cgroupfs), a kubelet, CNI bridge networking, kube-proxy, CoreDNS.
#
#   ci/cluster.sh up      start it (state in $ASYA_CLUSTER_DIR, default /tmp/asya-cluster); prints KUBECONFIG=...
#   ci/cluster.sh down    stop every process, remove pods' netns/veths, the bridge, iptables chains, cgroups
#   ci/cluster.sh env     print KUBECONFIG=... and CONTAINERD_ADDRESS=... of the running cluster
#   ci/cluster.sh load TAR...   import OCI archives into the node's containerd (k8s.io namespace)
#
# Networking stays on this machine: the apiserver and kubelet listen on the bridge address
# (10.244.0.1, reachable from the host and the pods only), health ports on 127.0.0.1, pods get
# their own network namespaces on the bridge. One cluster per machine (the bridge name is fixed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D=${ASYA_CLUSTER_DIR:-/tmp/asya-cluster}
BRIDGE=asya0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
NODE=asya-node
CGROUP=asya   # parent cgroup of every pod, under each v1 hierarchy (removed on down)

log() { echo "[cluster $(date -u +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

bins() {
  BIN=$("$ROOT/ci/build-kube.sh" node | tail -1)/k8s-${K8S:-v1.34.4}
  ETCD_BIN=$(ls "${BIN%/*}"/etcd-*/etcd 2>/dev/null | tail -1)
  [ -x "$ETCD_BIN" ] || ETCD_BIN=$(command -v etcd)
  eval "$("$ROOT/ci/build-node-images.sh" | tail -1)"
}

# ---------------------------------------------------------------------------------- PKI
pki() {
  local p=$D/pki; mkdir -p "$p"; cd "$p"
  ca() { openssl req -x509 -newkey rsa:2048 -nodes -days 7 -keyout "$1.key" -out "$1.crt" -subj "/CN=$1" 2>/dev/null; }
  # cert NAME CA SUBJ EXT
  cert() {
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
    printf '%b' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 7 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
  }
  ca ca; ca front-proxy-ca
  cert apiserver ca "/CN=kube-apiserver" \
    "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
  cert kubelet ca "/CN=$NODE" "subjectAltName=IP:$NODE_IP,DNS:$NODE\nextendedKeyUsage=serverAuth\n"
  local cli="extendedKeyUsage=clientAuth\n"
  cert admin ca "/O=system:masters/CN=asya-admin" "$cli"
  cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" "$cli"
  cert node ca "/O=system:nodes/CN=system:node:$NODE" "$cli"
  cert controller-manager ca "/CN=system:kube-controller-manager" "$cli"
  cert scheduler ca "/CN=system:kube-scheduler" "$cli"
  cert proxy ca "/CN=system:kube-proxy" "$cli"
  cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" "$cli"
  openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  rm -f ./*.csr ./*.ext ./*.srl
  chmod 600 ./*.key
  cd - >/dev/null
}

kubeconfig() {  # NAME (cert in pki/NAME.*)
  cat >"$D/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: asya, cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$D/pki/ca.crt"}}]
users: [{name: $1, user: {client-certificate: "$D/pki/$1.crt", client-key: "$D/pki/$1.key"}}]
contexts: [{name: asya, context: {cluster: asya, user: $1}}]
current-context: asya
EOF
  chmod 600 "$D/$1.kubeconfig"
}

# ------------------------------------------------------------------------------ processes
start() {  # NAME CMD... ; pid in $D/run/NAME.pid, log in $D/log/NAME.log
  local name=$1; shift
  setsid "$@" >"$D/log/$name.log" 2>&1 </dev/null &
  echo $! >"$D/run/$name.pid"
}

wait_for() {  # WHAT DEADLINE_S CMD...
  local what=$1 limit=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what not ready after ${limit}s (logs in $D/log)"
    sleep 0.5
  done
  log "$what ready"
}

K() { "$BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" "$@"; }

network() {
  sysctl -n net.ipv4.ip_forward >"$D/run/ip_forward.orig"
  sysctl -qw net.ipv4.ip_forward=1   # pod -> ClusterIP -> pod on the same bridge is routed through the host
  ip link add "$BRIDGE" type bridge 2>/dev/null || true
  ip addr replace "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  mkdir -p "$D/cni"
  # no ipMasq: the pods reach the host and each other only, nothing outside
  cat >"$D/cni/10-asya.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "asya", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.244.0.10"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$D/cni-ipam"}},
  {"type": "loopback"}]}
EOF
}

containerd_up() {
  mkdir -p "$D/containerd"
  cat >"$D/containerd/config.toml" <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd/containerd.sock"
[ttrpc]
  address = "$D/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # no CAP_SYS_RESOURCE here: never lower oom_score_adj below our own
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni"
EOF
  start containerd containerd --config "$D/containerd/config.toml"
  wait_for containerd 30 ctr --address "$D/containerd/containerd.sock" version
  load "$PAUSE_TAR" "$COREDNS_TAR"
}

load() {  # import OCI archives into the node's containerd
  local t
  for t in "$@"; do
    ctr --address "$D/containerd/containerd.sock" -n k8s.io images import --all-platforms --no-unpack=false "$t" >/dev/null
    log "loaded ${t##*/}"
  done
}

apiserver_up() {
  start etcd "$ETCD_BIN" --name asya --data-dir "$D/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "asya=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync --logger=zap --max-request-bytes=10485760
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  local p=$D/pki
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
    --service-account-issuer="https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$p/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$p/front-proxy-client.crt" --proxy-client-key-file="$p/front-proxy-client.key" \
    --enable-aggregator-routing=true --service-node-port-range=30000-32767
  wait_for kube-apiserver 90 K get --raw /readyz
}

controllers_up() {
  local p=$D/pki
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$D/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$D/controller-manager.kubeconfig" --authorization-kubeconfig="$D/controller-manager.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$(free_port)" \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" --use-service-account-credentials=true \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --service-cluster-ip-range="$SVC_CIDR" --allocate-node-cidrs=false --controllers='*,-cloud-node-lifecycle' \
    --horizontal-pod-autoscaler-sync-period=2s
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$D/scheduler.kubeconfig" \
    --authentication-kubeconfig="$D/scheduler.kubeconfig" --authorization-kubeconfig="$D/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$(free_port)"
}

cgroups_up() {
  local h
  for h in /sys/fs/cgroup/*/; do
    case $h in */unified/) continue ;; esac
    mkdir -p "$h$CGROUP"
    # cpuset children start empty: give ours the parent's cpus and mems
    if [ -f "$h/cpuset.cpus" ]; then cat "$h/cpuset.cpus" >"$h$CGROUP/cpuset.cpus"; cat "$h/cpuset.mems" >"$h$CGROUP/cpuset.mems"; fi
  done
}

kubelet_up() {
  mkdir -p "$D/kubelet"
  grep -v '^nameserver 127\.' /etc/resolv.conf >"$D/resolv.conf" || true  # a loopback resolver means nothing in a pod
  cat >"$D/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ
tlsCertFile: $D/pki/kubelet.crt
tlsPrivateKeyFile: $D/pki/kubelet.key
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $D/pki/ca.crt}}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $D/resolv.conf
protectKernelDefaults: false
makeIPTablesUtilChains: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: true
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 100
maxPods: 60
oomScoreAdj: 0
EOF
  start kubelet "$BIN/kubelet" --config="$D/kubelet/config.yaml" --kubeconfig="$D/node.kubeconfig" \
    --root-dir="$D/kubelet/root" --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
  wait_for "node $NODE" 120 sh -c "'$BIN/kubectl' --kubeconfig '$D/admin.kubeconfig' get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

proxy_up() {
  cat >"$D/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $D/proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ
metricsBindAddress: 127.0.0.1:$(free_port)
# NodePorts on the bridge address only (never on 127.0.0.1, where other test servers listen)
nodePortAddresses: [$NODE_IP/32]
# pods on one bridge answer each other directly unless the host masquerades service traffic
iptables: {masqueradeAll: true}
# leave the host's conntrack sysctls alone
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$BIN/kube-proxy" --config="$D/kube-proxy.yaml"
}

coredns_up() {
  K apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            ttl 5
        }
        cache 5
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: coredns
          image: $COREDNS_IMAGE
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          ports: [{containerPort: 1053, protocol: UDP, name: dns}, {containerPort: 1053, protocol: TCP, name: dns-tcp}]
          readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /health, port: 8080}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
          volumeMounts: [{name: config, mountPath: /etc/coredns}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
  wait_for coredns 120 K -n kube-system rollout status deploy/coredns --timeout=5s
}

cmd_up() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, cgroups, iptables)"
  if [ -f "$D/env" ] && K_ok; then log "already up"; cmd_env; return; fi
  [ ! -e "$D" ] || cmd_down
  command -v containerd >/dev/null || "$ROOT/ci/apt.sh" containerd iptables conntrack
  bins
  mkdir -p "$D/run" "$D/log"
  API_PORT=$(free_port); ETCD_PORT=$(free_port); ETCD_PEER=$(free_port)
  KUBELET_PORT=$(free_port); KUBELET_HEALTHZ=$(free_port); PROXY_HEALTHZ=$(free_port)
  local start_s=$SECONDS
  pki
  for n in admin node controller-manager scheduler proxy; do kubeconfig $n; done
  network
  containerd_up
  apiserver_up
  controllers_up
  cgroups_up
  kubelet_up
  proxy_up
  coredns_up
  printf 'KUBECONFIG=%s\nCONTAINERD_ADDRESS=%s\nBIN=%s\n' "$D/admin.kubeconfig" "$D/containerd/containerd.sock" "$BIN" >"$D/env"
  log "up in $((SECONDS - start_s)) s"
  cmd_env
}

K_ok() { [ -f "$D/env" ] && . "$D/env" && "$BIN/kubectl" --kubeconfig "$KUBECONFIG" get --raw /readyz >/dev/null 2>&1; }

cmd_env() {
  [ -f "$D/env" ] || die "no cluster in $D (ci/cluster.sh up)"
  cat "$D/env"
  echo "# export \$(ci/cluster.sh env | grep -v '^#'); \$BIN/kubectl get pods -A" >&2
}

stop_pid() {
  local f=$1 pid
  pid=$(cat "$f" 2>/dev/null) || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$f"
}

cmd_down() {
  [ -d "$D" ] || { log "nothing to stop"; return 0; }
  local n
  # the kubelet first (it would restart pods), then every pod sandbox through containerd
  stop_pid "$D/run/kubelet.pid"
  if [ -S "$D/containerd/containerd.sock" ]; then
    local c=(ctr --address "$D/containerd/containerd.sock" -n k8s.io)
    for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true; done
  fi
  for n in kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do stop_pid "$D/run/$n.pid"; done
  # the containerd-shim-runc-v2 processes of this cluster (their command line names our state dir)
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $D/containerd/" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  [ -f "${BIN:-/nonexistent}/kube-proxy" ] || BIN=$(ls -d "${ASYA_TOOLS:-$HOME/.cache/asya-tools}"/k8s-v*/ 2>/dev/null | tail -1)
  [ ! -x "$BIN/kube-proxy" ] || "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # CNI netns and mounts under the state dir
  grep " $D" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
    ip netns exec "$ns" ip -o addr 2>/dev/null | grep -q "10\.244\.0\." && ip netns delete "$ns" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  [ ! -f "$D/run/ip_forward.orig" ] || sysctl -qw "net.ipv4.ip_forward=$(cat "$D/run/ip_forward.orig")"
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$CGROUP" ] || continue
    find "$h$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$D"
  log "down"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  load) shift; [ -f "$D/env" ] || die "cluster not up"; load "$@" ;;
  *) echo "usage: $0 up|down|env|load TAR..." >&2; exit 2 ;;
esac
