#!/usr/bin/env bash
# Builds the release artifacts into dist/: one self-contained binary per architecture
# (`bun build --compile --minify --bytecode --format=esm`), then per architecture a .tar.gz, a
# .tar.xz and a .deb (scripts/package.sh), and one dist/sha256sums.txt covering all of them.
#
# Offline and pinned: the runtime embedded in each binary is the exact Bun version of this
# toolchain (node_modules/bun, pinned in package.json), fetched from the npm registry with
# `npm pack @oven/bun-linux-<arch>@<version>` into .cache/ and handed to --compile-executable-path
# (without it Bun would download from its own hard-coded address). --bytecode output is tied to
# that exact JavaScriptCore, so host toolchain and embedded runtime must match: checked below.
#
# x64 embeds the "baseline" runtime (x86-64-v2, no AVX2 needed): appliances run on Atom/Celeron
# boxes that lack AVX2, where the default x64 build dies with SIGILL. Set X64_VARIANT=modern for
# the AVX2 build. arm64 embeds bun-linux-aarch64 (ARMv8.0; scripts/release-test.sh runs it under
# qemu -cpu cortex-a53, the Raspberry Pi 3 / Zero 2 W core).
#
# The binaries are not stripped: `strip` removes the embedded application.
#
# A daemon reads only the configuration it was given (flags, CAN_SERVER_* variables): a compiled
# Bun binary would otherwise load .env/.env.local/.env.production and bunfig.toml (preload
# scripts included) from whatever directory it is started in. Turned off with
# --no-compile-autoload-dotenv and --no-compile-autoload-bunfig (and, explicitly, tsconfig.json
# and package.json, off by default in Bun 1.4.5); test/release/smoke.ts proves it.
#
# Usage: scripts/build.sh                  both architectures
#        ARCHES=x64 scripts/build.sh       one
#        ENTRY=path/to/entry.ts ...        another entrypoint (default src/main.ts)
# Version: the exact tag on HEAD (vX.Y.Z or X.Y.Z) if any, else package.json; commit and date
# (commit time, UTC) from git, so rebuilding a commit gives the same metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/node_modules/.bin:$PATH"

ARCHES=${ARCHES:-"x64 arm64"}
X64_VARIANT=${X64_VARIANT:-baseline}
ENTRY=${ENTRY:-src/main.ts}
WORKER=src/backends/socketcan/rx-worker.ts
DIST=$ROOT/dist
CACHE=$ROOT/.cache/bun-runtime

die() { echo "build: $*" >&2; exit 1; }
# elapsed START_NS → "12.3 s" since START (from date +%s%N).
elapsed() { awk -v ns=$(($(date +%s%N) - $1)) 'BEGIN { printf "%.1f s", ns / 1e9 }'; }
BUILD_START=$(date +%s%N)

command -v bun >/dev/null || die "bun not found (run npm install)"
BUN_VERSION=$(bun --version)
PINNED=$(bun -e 'console.log(require("./package.json").devDependencies.bun)')
[ "$BUN_VERSION" = "$PINNED" ] || die "toolchain bun $BUN_VERSION differs from package.json's pinned $PINNED (run npm ci)"

PKG_VERSION=$(bun -e 'console.log(require("./package.json").version)')
TAG=$(git describe --tags --exact-match 2>/dev/null || true)
if [[ $TAG =~ ^v?([0-9]+\.[0-9]+\.[0-9]+.*)$ ]]; then VERSION=${BASH_REMATCH[1]}; else VERSION=$PKG_VERSION; fi
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$COMMIT" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT-dirty"; fi
DATE=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

# runtime_for ARCH → path of the pinned bun executable for that target (downloaded once).
runtime_for() {
  local pkg
  case $1 in
    x64) if [ "$X64_VARIANT" = modern ]; then pkg=bun-linux-x64; else pkg=bun-linux-x64-baseline; fi ;;
    arm64) pkg=bun-linux-aarch64 ;;
    *) die "unknown arch $1" ;;
  esac
  local dir=$CACHE/$BUN_VERSION/$pkg
  if [ ! -x "$dir/package/bin/bun" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "@oven/$pkg@$BUN_VERSION" >/dev/null && tar -xzf "oven-$pkg-$BUN_VERSION.tgz" package/bin/bun && rm -f ./*.tgz) ||
      die "could not fetch @oven/$pkg@$BUN_VERSION with npm pack"
  fi
  # The runtime must be the architecture we are building for.
  local machine want
  machine=$(readelf -h "$dir/package/bin/bun" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
  case $1 in x64) want="Advanced Micro Devices X86-64" ;; arm64) want="AArch64" ;; esac
  [ "$machine" = "$want" ] || die "$dir/package/bin/bun is $machine, expected $want"
  echo "$dir/package/bin/bun"
}

target_for() {
  case $1 in
    x64) if [ "$X64_VARIANT" = modern ]; then echo bun-linux-x64; else echo bun-linux-x64-baseline; fi ;;
    arm64) echo bun-linux-arm64 ;;
  esac
}

entries=("$ENTRY")
# The SocketCAN receive worker runs in a Worker: it must be an entrypoint of its own to be embedded.
[ -f "$WORKER" ] && entries+=("$WORKER")

echo "build: can-server $VERSION (commit $COMMIT, built $DATE), bun $BUN_VERSION, entries: ${entries[*]}"
rm -f "$DIST"/can-server-*.tar.gz "$DIST"/can-server-*.tar.xz "$DIST"/can-server_*.deb "$DIST"/sha256sums.txt
for arch in $ARCHES; do
  echo "build: $arch: fetching the pinned runtime (npm pack, cached in .cache/) ..."
  start=$(date +%s%N)
  runtime=$(runtime_for "$arch")
  echo "build: $arch: runtime $runtime ($(elapsed "$start"))"
  out=$DIST/can-server-linux-$arch
  rm -rf "$out" && mkdir -p "$out"
  echo "build: $arch: compiling $ENTRY (bun build --compile --minify --bytecode) ..."
  start=$(date +%s%N)
  bun build --compile --minify --bytecode --format=esm \
    --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
    --no-compile-autoload-tsconfig --no-compile-autoload-package-json \
    --target="$(target_for "$arch")" \
    --compile-executable-path="$runtime" \
    --define "CAN_SERVER_VERSION=\"$VERSION\"" \
    --define "CAN_SERVER_COMMIT=\"$COMMIT\"" \
    --define "CAN_SERVER_DATE=\"$DATE\"" \
    "${entries[@]}" --outfile "$out/can-server" >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; die "bun build for $arch failed"; }
  echo "build: $arch: $out/can-server, $(stat -c %s "$out/can-server") bytes ($(elapsed "$start"))"
  echo "build: $arch: packaging (tar.gz, tar.xz, .deb; compressing ~100 MiB takes a while) ..."
  start=$(date +%s%N)
  VERSION=$VERSION bash scripts/package.sh "$arch" "$out/can-server"
  echo "build: $arch: packaged ($(elapsed "$start"))"
done

(cd "$DIST" && sha256sum can-server-*.tar.gz can-server-*.tar.xz can-server_*.deb >sha256sums.txt)
echo "build: done in $(elapsed "$BUILD_START"); artifacts in dist/:"
cat "$DIST/sha256sums.txt"
