#!/usr/bin/env bash
# Packages one compiled binary (called by scripts/build.sh per architecture):
#   dist/can-server-<version>-linux-<arch>.tar.gz  binary, README.md, LICENSE, systemd unit, defaults file
#   dist/can-server-<version>-linux-<arch>.tar.xz  the same tar, xz-compressed (about a quarter smaller)
#   dist/can-server_<version>_<debarch>.deb        /usr/bin/can-server, /lib/systemd/system/can-server.service,
#                                                  /etc/default/can-server (conffile), docs; postinst/prerm/postrm
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

# --- tarball ---
name=can-server-$VERSION-linux-$ARCH
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name"
install -m 0755 "$BIN" "$stage/$name/can-server"
install -m 0644 README.md LICENSE "$stage/$name/"
install -m 0644 packaging/can-server.service "$stage/$name/can-server.service"
install -m 0644 packaging/can-server.default "$stage/$name/can-server.default"
tar -C "$stage" "${TAR_OPTS[@]}" -cf "$stage/$name.tar" "$name"
gzip -n -6 <"$stage/$name.tar" >"$DIST/$name.tar.gz"
# xz -9e gains < 1 % over -6 on the binary for 3x the time; -T0 only splits blocks (still reproducible).
xz -6 -T0 -c <"$stage/$name.tar" >"$DIST/$name.tar.xz"
rm -f "$stage/$name.tar"
echo "package: dist/$name.tar.gz, dist/$name.tar.xz"

# --- .deb ---
root=$stage/deb
install -D -m 0755 "$BIN" "$root/usr/bin/can-server"
install -D -m 0644 packaging/can-server.service "$root/lib/systemd/system/can-server.service"
install -D -m 0644 packaging/can-server.default "$root/etc/default/can-server"
install -D -m 0644 README.md "$root/usr/share/doc/can-server/README.md"
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
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package: dist/$(basename "$deb") (Depends: $depends)"
