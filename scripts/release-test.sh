#!/usr/bin/env bash
# Release tests (run by .ci/run): builds both release binaries and packages (scripts/build.sh),
# then proves them:
#   - x64 binary: end-to-end smoke test (test/release/smoke.ts: virtual bus, cannelloni exchange,
#     /metrics, /ready, SIGTERM → exit 0 within 1 s), run as an unprivileged user without any
#     capability (the premise of the unit's DynamicUser=, empty CapabilityBoundingSet=); it also
#     starts the binary in a directory holding a .env (CAN_SERVER_LISTEN=127.0.0.1:<port>, …) and
#     a bunfig.toml with a preload script, and requires that neither changes anything (build.sh
#     compiles with --no-compile-autoload-dotenv --no-compile-autoload-bunfig);
#   - arm64 binary: the same smoke test under qemu-aarch64-static -cpu cortex-a53 (ARMv8.0, the
#     Raspberry Pi 3 / Zero 2 W core);
#   - mDNS from the x64 binary: advertised and withdrawn, seen by a browser in a second private
#     network namespace (veth pair between two namespaces the test creates; root only);
#   - tarball and .deb contents (tar -t, dpkg-deb -c / -I / -f), sha256sums.txt: both carry the
#     docs (README, BENCHMARKS, RELIABILITY, docs/; /usr/share/doc/can-server/ in the .deb), and
#     their descriptions name every client protocol (test/release/protocol-names.ts);
#   - the systemd unit with `systemd-analyze verify` (if available) and the maintainer scripts:
#     shell syntax, and a run without a running systemd (with a recording stand-in for systemctl,
#     since no systemd runs here) that must succeed and only enable/disable.
# Installs missing Debian packages first (scripts/install-release-deps.sh, idempotent).
# Prints "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/node_modules/.bin:$PATH"
[ -x node_modules/.bin/bun ] || sh scripts/ensure-npm.sh || exit 1
passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { # check "what" cmd...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

finish() {
  echo "release-test: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit $?
}

if ! command -v qemu-aarch64-static >/dev/null || ! dpkg -s libc6:arm64 >/dev/null 2>&1; then
  bash scripts/install-release-deps.sh || bad "install-release-deps.sh"
fi

# --- build ---
if bash scripts/build.sh; then ok "scripts/build.sh (x64 + arm64)"; else bad "scripts/build.sh"; finish; fi
VERSION=$(grep -oE 'can-server-[^-]+-linux-x64.tar.gz' dist/sha256sums.txt | head -1 | sed -E 's/can-server-(.*)-linux-x64.tar.gz/\1/')
X64=dist/can-server-linux-x64/can-server
ARM64=dist/can-server-linux-arm64/can-server

# --- smoke tests ---
UNPRIVILEGED=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs)
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then UNPRIVILEGED=(); fi
if bun test/release/smoke.ts "$X64" "$VERSION" -- "${UNPRIVILEGED[@]}"; then ok "x64 smoke test${UNPRIVILEGED:+ (unprivileged, no capabilities)}"; else bad "x64 smoke test"; fi
if command -v qemu-aarch64-static >/dev/null; then
  if bun test/release/smoke.ts "$ARM64" "$VERSION" -- qemu-aarch64-static -cpu cortex-a53; then ok "arm64 smoke test under qemu -cpu cortex-a53"; else bad "arm64 smoke test under qemu -cpu cortex-a53"; fi
else
  bad "qemu-aarch64-static missing: arm64 binary not tested"
fi

# --- mDNS from the compiled binary (bundled bonjour-service), only inside two private network
# namespaces joined by a veth pair created inside them: no packet reaches a real interface. ---
mdns_binary_test() {
  local t=$$ ns1 ns2 out
  ns1=csrel-pub-$t ns2=csrel-brw-$t
  out=$(mktemp)
  ip netns add "$ns1" && ip netns add "$ns2" &&
    ip -n "$ns1" link add "crp$t" type veth peer name "crb$t" netns "$ns2" &&
    ip -n "$ns1" addr add 10.214.0.1/24 dev "crp$t" && ip -n "$ns2" addr add 10.214.0.2/24 dev "crb$t" &&
    ip -n "$ns1" link set lo up && ip -n "$ns2" link set lo up &&
    ip -n "$ns1" link set "crp$t" up multicast on && ip -n "$ns2" link set "crb$t" up multicast on &&
    ip -n "$ns1" route add 224.0.0.0/4 dev "crp$t" && ip -n "$ns2" route add 224.0.0.0/4 dev "crb$t" || {
    ip netns del "$ns1" 2>/dev/null; ip netns del "$ns2" 2>/dev/null; rm -f "$out"; return 1
  }
  ip netns exec "$ns2" timeout 12 bun test/ops/mdns-browser.ts >"$out" 2>&1 &
  local browser=$!
  sleep 1
  ip netns exec "$ns1" timeout -s TERM 5 "$X64" -backend virtual -mdns-enable true -mdns-name release-test \
    -waveshare-listen :20001 -log-format json >/dev/null 2>&1
  sleep 2
  kill "$browser" 2>/dev/null; wait "$browser" 2>/dev/null
  ip netns del "$ns1"; ip netns del "$ns2"
  cat "$out"
  local rc=0
  grep -q '"event":"up","name":"release-test","type":"can-server","protocol":"tcp","port":20000' "$out" &&
    grep -q "\"txt\":{\"backend\":\"virtual\",\"version\":\"$VERSION\",\"commit\":\"[0-9a-f]" "$out" &&
    grep -q '"waveshare_port":"20001"' "$out" &&
    grep -q '"event":"down","name":"release-test"' "$out" || rc=1
  rm -f "$out"
  return $rc
}
if [ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1; then
  check "x64 binary advertises _can-server._tcp (TXT backend/version/commit/waveshare_port) and withdraws it on SIGTERM" mdns_binary_test
else
  echo "note: not root or no 'ip netns': mDNS of the compiled binary not tested"
fi

# --- archives ---
check "sha256sums.txt lists 6 artifacts (gz, xz, deb per arch) and verifies" bash -c 'cd dist && [ "$(wc -l <sha256sums.txt)" = 6 ] && sha256sum --quiet -c sha256sums.txt'
# tar_unit_names_protocols TARBALL DIR: the unit's Description= names every client protocol.
tar_unit_names_protocols() { tar -xOzf "$1" "$2/can-server.service" | grep '^Description=' | bun test/release/protocol-names.ts; }
# tar_readme_links_resolve TARBALL DIR: every relative .md/.png link of README is in the tarball.
tar_readme_links_resolve() {
  local f list
  list=$(tar -t -zf "$1")
  for f in $(tar -xOzf "$1" "$2/README.md" | grep -oE '\]\([A-Za-z0-9_./-]+\.(md|png)\)' | sed -E 's/^\]\((.*)\)$/\1/' | sort -u); do
    grep -qx "$2/$f" <<<"$list" || { echo "README links to $f, not in $1"; return 1; }
  done
}
for arch in x64 arm64; do
  d=can-server-$VERSION-linux-$arch
  docs=$(find docs -maxdepth 1 -type f \( -name '*.md' -o -name '*.png' \) | sort | sed "s#^#$d/#")
  want=$(printf '%s\n' "$d/" "$d/BENCHMARKS.md" "$d/LICENSE" "$d/README.md" "$d/RELIABILITY.md" "$d/can-server" "$d/can-server.default" "$d/can-server.service" "$d/docs/" $docs | sort)
  for ext in gz xz; do
    tarball=dist/$d.tar.$ext
    z=-z; [ "$ext" = xz ] && z=-J
    check "$arch .tar.$ext holds binary, README, LICENSE, docs/ (every page README links to), unit, defaults" bash -c "[ \"\$(tar -t $z -f '$tarball' | sort)\" = \"$want\" ]"
    check "$arch .tar.$ext binary is executable and root-owned" bash -c "tar -tv $z -f '$tarball' '$d/can-server' | grep -qE '^-rwxr-xr-x 0/0 '"
  done
  check "$arch tarball's unit Description= names every client protocol" tar_unit_names_protocols "dist/$d.tar.gz" "$d"
  check "$arch tarball's README links only to files the tarball holds" tar_readme_links_resolve "dist/$d.tar.gz" "$d"
  check "$arch .tar.gz and .tar.xz hold the same binary" bash -c "[ \"\$(tar -xOzf 'dist/$d.tar.gz' '$d/can-server' | sha256sum)\" = \"\$(tar -xOJf 'dist/$d.tar.xz' '$d/can-server' | sha256sum)\" ]"
done
machine_of() { readelf -h "$1" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}'; }
check "x64 binary is x86-64" bash -c "[ \"$(machine_of "$X64")\" = 'Advanced Micro Devices X86-64' ]"
check "arm64 binary is AArch64" bash -c "[ \"$(machine_of "$ARM64")\" = AArch64 ]"

for debarch in amd64 arm64; do
  deb=dist/can-server_${VERSION}_$debarch.deb
  contents=$(dpkg-deb -c "$deb")
  info=$(dpkg-deb -I "$deb")
  debdocs=$(find docs -maxdepth 1 -type f \( -name '*.md' -o -name '*.png' \) | sort | sed 's#^#./usr/share/doc/can-server/#')
  for path in ./usr/bin/can-server ./lib/systemd/system/can-server.service ./etc/default/can-server ./usr/share/doc/can-server/copyright \
    ./usr/share/doc/can-server/README.md ./usr/share/doc/can-server/BENCHMARKS.md ./usr/share/doc/can-server/RELIABILITY.md $debdocs; do
    check "$debarch .deb contains $path" grep -qE " $path\$" <<<"$contents"
  done
  check "$debarch .deb /usr/bin/can-server is root:root 0755" grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/can-server$' <<<"$contents"
  check "$debarch .deb Package/Version/Architecture" bash -c "[ \"\$(dpkg-deb -f '$deb' Package Version Architecture | tr '\n' ' ')\" = 'Package: can-server Version: $VERSION Architecture: $debarch ' ]"
  check "$debarch .deb Description names every client protocol" bash -c "dpkg-deb -f '$deb' Description | bun test/release/protocol-names.ts"
  check "$debarch .deb depends on libc6 only" grep -qE '^ Depends: libc6( \(>= [0-9.]+\))?$' <<<"$info"
  for member in postinst prerm postrm conffiles; do
    check "$debarch .deb control area has $member" grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$member" <<<"$info"
  done
  tmp=$(mktemp -d)
  dpkg-deb -e "$deb" "$tmp/DEBIAN"
  check "$debarch .deb marks /etc/default/can-server as a conffile" grep -qx /etc/default/can-server "$tmp/DEBIAN/conffiles"
  check "$debarch .deb maintainer scripts are executable" test -x "$tmp/DEBIAN/postinst" -a -x "$tmp/DEBIAN/prerm" -a -x "$tmp/DEBIAN/postrm"
  rm -rf "$tmp"
done

# --- maintainer scripts without a running systemd ---
for s in postinst prerm postrm; do check "$s shell syntax" sh -n packaging/deb/$s; done
if [ ! -d /run/systemd/system ]; then
  # Stand-in for systemctl (no systemd runs here): records its arguments.
  fake=$(mktemp -d)
  printf '#!/bin/sh\necho "$*" >>"%s/calls"\n' "$fake" >"$fake/systemctl"
  chmod +x "$fake/systemctl"
  check "postinst configure (fresh install) succeeds without systemd" env PATH="$fake:$PATH" sh packaging/deb/postinst configure
  check "prerm remove succeeds without systemd" env PATH="$fake:$PATH" sh packaging/deb/prerm remove
  check "postrm purge succeeds without systemd" env PATH="$fake:$PATH" sh packaging/deb/postrm purge
  check "without systemd only enable/disable were called (no start/stop/reload)" \
    bash -c "[ \"\$(cat '$fake/calls')\" = \"\$(printf 'enable can-server.service\ndisable can-server.service')\" ]"
  rm -rf "$fake"
else
  echo "note: systemd is running here; the maintainer scripts' no-systemd path is not exercised"
fi

# --- systemd unit ---
if command -v systemd-analyze >/dev/null; then
  # verify insists that ExecStart exists: point a copy at the built binary.
  tmp=$(mktemp -d)
  sed "s#/usr/bin/can-server#$ROOT/$X64#" packaging/can-server.service >"$tmp/can-server.service"
  out=$(systemd-analyze verify "$tmp/can-server.service" 2>&1)
  rc=$?
  [ -n "$out" ] && echo "$out"
  check "systemd-analyze verify can-server.service (no warnings)" test "$rc" = 0 -a -z "$out"
  rm -rf "$tmp"
else
  echo "note: systemd-analyze not available; unit not verified"
fi
check "unit has no sh -c wrapper and reads /etc/default/can-server" bash -c \
  "! grep -v '^#' packaging/can-server.service | grep -q 'sh -c' && grep -qx 'EnvironmentFile=-/etc/default/can-server' packaging/can-server.service"
check "unit gives -record a writable place (StateDirectory=can-server), documented in the defaults file and README" bash -c \
  "grep -qx 'StateDirectory=can-server' packaging/can-server.service && grep -q '/var/lib/can-server/recordings' packaging/can-server.default && grep -q '/var/lib/can-server/recordings' README.md"

finish
