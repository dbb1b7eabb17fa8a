#!/usr/bin/env bash
# A Debian 11 (bullseye) root filesystem whose /usr/bin/python3 is CPython 3.9: the
# oldest interpreter the runtime promises to run on (SPEC section 4). The runtime
# tests start server.py inside it with chroot (python/tests/runtime/conftest.py).
#
# Usage: ci/py39.sh          build if missing, print the rootfs directory
# Cached in ${ASYA_TOOLS:-~/.cache/asya-tools}/bullseye-py39; a warm run returns at once.
# A failed build leaves its log next to the cache dir and exits non-zero.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${ASYA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/asya-tools}
DEST=$TOOLS/bullseye-py39
LOG=$TOOLS/bullseye-py39.log
mkdir -p "$TOOLS"

ready() { [ -x "$DEST/usr/bin/python3.9" ] && [ -f "$DEST/.asya-complete" ]; }
if ready; then echo "$DEST"; exit 0; fi

# Parallel test workers may all ask at once: one builds, the others wait for it.
exec 9>"$TOOLS/bullseye-py39.lock"
flock 9
if ready; then echo "$DEST"; exit 0; fi

"$ROOT/ci/apt.sh" mmdebstrap debian-archive-keyring util-linux >&2
tmp=$(mktemp -d "$TOOLS/bullseye-py39.tmp-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Bullseye left the main mirror's rotation after its LTS; try the archive if the mirror fails.
for mirror in http://deb.debian.org/debian http://archive.debian.org/debian; do
  rm -rf "$tmp/root"
  if mmdebstrap --variant=minbase --include=python3 \
      bullseye "$tmp/root" "deb $mirror bullseye main" >"$LOG" 2>&1; then
    break
  fi
  echo "mmdebstrap from $mirror failed (log: $LOG)" >&2
done
if [ ! -x "$tmp/root/usr/bin/python3.9" ]; then
  echo "could not build the bullseye rootfs; last log $LOG:" >&2
  tail -20 "$LOG" >&2
  exit 1
fi
mkdir -p "$tmp/root/asya/tests" "$tmp/root/asya/runtime"  # bind-mount points of the tests
touch "$tmp/root/.asya-complete"
rm -rf "$DEST"
mv "$tmp/root" "$DEST"
echo "$DEST"
