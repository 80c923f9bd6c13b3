#!/usr/bin/env bash
# Packages one compiled binary (called by scripts/build.sh per architecture):
#   dist/can-server-<version>-linux-<arch>.tar.gz  binary, README.md, BENCHMARKS.md, RELIABILITY.md,
#                                                  LICENSE, docs/ (the pages README links to), systemd
#                                                  unit, defaults file
#   dist/can-server-<version>-linux-<arch>.tar.xz  the same tar, xz-compressed (about a quarter smaller)
#   dist/can-server_<version>_<debarch>.deb        /usr/bin/can-server, /lib/systemd/system/can-server.service,
#                                                  /etc/default/can-server (conffile), the same docs in
#                                                  /usr/share/doc/can-server/; postinst/prerm/postrm
# Each step says what it does and how long it took (compression of the ~100 MiB binary is most of
# a build's time).
# The .deb's libc6 dependency is read from the binary's versioned glibc symbols.
# Usage: VERSION=x.y.z scripts/package.sh <x64|arm64> <binary>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARCH=${1:?arch}
BIN=${2:?binary}
VERSION=${VERSION:?VERSION}
DIST=$ROOT/dist
case $ARCH in x64) DEBARCH=amd64 ;; arm64) DEBARCH=arm64 ;; *) echo "package: unknown arch $ARCH" >&2; exit 1 ;; esac

# Files are owned by root:root and dated by the commit, so the archives are reproducible.
MTIME=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH=$MTIME
TAR_OPTS=(--owner=0 --group=0 --numeric-owner --mtime="@$MTIME" --sort=name)
# step "what" cmd...: prints what it is doing, runs it, prints how long it took.
step() {
  local what=$1 start
  shift
  printf 'package: %-5s %s ...\n' "$ARCH" "$what"
  start=$(date +%s%N)
  "$@"
  printf 'package: %-5s %s: done in %s s\n' "$ARCH" "$what" "$(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')"
}
# install_docs DIR: README and friends into DIR, docs/ into DIR/docs (the links keep working).
install_docs() {
  install -d -m 0755 "$1/docs"
  install -m 0644 README.md BENCHMARKS.md RELIABILITY.md "$1/"
  find docs -maxdepth 1 -type f \( -name '*.md' -o -name '*.png' \) -exec install -m 0644 {} "$1/docs/" \;
}

# --- tarball ---
name=can-server-$VERSION-linux-$ARCH
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name"
install -m 0755 "$BIN" "$stage/$name/can-server"
install -m 0644 LICENSE "$stage/$name/"
install_docs "$stage/$name"
install -m 0644 packaging/can-server.service "$stage/$name/can-server.service"
install -m 0644 packaging/can-server.default "$stage/$name/can-server.default"
find "$stage/$name" -exec touch -h -d "@$MTIME" {} +
tar -C "$stage" "${TAR_OPTS[@]}" -cf "$stage/$name.tar" "$name"
step "gzip -6 -> dist/$name.tar.gz" sh -c 'gzip -n -6 <"$1" >"$2"' _ "$stage/$name.tar" "$DIST/$name.tar.gz"
# xz -9e gains < 1 % over -6 on the binary for 3x the time; -T0 only splits blocks (still reproducible).
step "xz -6 -> dist/$name.tar.xz" sh -c 'xz -6 -T0 -c <"$1" >"$2"' _ "$stage/$name.tar" "$DIST/$name.tar.xz"
rm -f "$stage/$name.tar"

# --- .deb ---
root=$stage/deb
install -D -m 0755 "$BIN" "$root/usr/bin/can-server"
install -D -m 0644 packaging/can-server.service "$root/lib/systemd/system/can-server.service"
install -D -m 0644 packaging/can-server.default "$root/etc/default/can-server"
install_docs "$root/usr/share/doc/can-server"
install -D -m 0644 LICENSE "$root/usr/share/doc/can-server/copyright"
mkdir -p "$root/DEBIAN"
glibc=$(readelf -V "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends="libc6${glibc:+ (>= $glibc)}"
size_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$DEBARCH/" -e "s/@SIZE_KB@/$size_kb/" -e "s/@DEPENDS@/$depends/" \
  packaging/deb/control.in >"$root/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
find "$root" -exec touch -h -d "@$MTIME" {} +
deb=$DIST/can-server_${VERSION}_$DEBARCH.deb
step "dpkg-deb (xz) -> dist/$(basename "$deb"), Depends: $depends" sh -c 'dpkg-deb --root-owner-group -Zxz --build "$1" "$2" >/dev/null' _ "$root" "$deb"
