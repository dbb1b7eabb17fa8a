#!/usr/bin/env bash
# Install Debian packages the tests need, only those that are missing.
# Usage: ci/apt.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services on install where it can; ours run on private ports instead.
$SUDO sh -c 'command -v rabbitmqctl >/dev/null && (service rabbitmq-server stop >/dev/null 2>&1 || true)' || true
