#!/usr/bin/env bash
# Installs what scripts/release-test.sh needs beyond the npm toolchain, idempotently (does nothing
# when all is there): qemu-user-static (runs the arm64 binary) and libc6:arm64 (its dynamic
# loader and libc; needs the arm64 foreign architecture), plus dpkg-dev tools and
# systemd (for `systemd-analyze verify`; optional). Debian/Ubuntu, as root.
set -euo pipefail

need=()
dpkg -s qemu-user-static >/dev/null 2>&1 || need+=(qemu-user-static)
dpkg -s libc6:arm64 >/dev/null 2>&1 || need+=(libc6:arm64)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-release-deps: all present"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-release-deps: need root to install: ${need[*]}" >&2; exit 1; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# systemd only provides systemd-analyze here; it is not started.
apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "install-release-deps: installed ${need[*]}"
