#!/usr/bin/env bash
# SocketCAN receive benchmark in the vmcan VM (../shared/vmcan): compiles the recvmmsg reference
# on the host (the guest runs the host's binaries), then inside the VM runs
# scripts/bench/socketcan-vm.ts against the compiled binary (scripts/build.sh first).
# Usage: scripts/bench/socketcan-vm.sh [FRAMES] [ROUNDS] [GAP_MS]   (GAP_MS: cangen -g, 0 = flood)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$PATH"
BIN=dist/can-server-linux-x64/can-server
[ -x "$BIN" ] || { echo "socketcan-vm: $BIN missing (run ARCHES=x64 scripts/build.sh)" >&2; exit 1; }
mkdir -p .cache/bench
cc -O2 -o .cache/bench/ref-recvmmsg scripts/bench/ref-recvmmsg.c
VMCAN=../shared/vmcan/run-in-vm.sh
[ -x "$VMCAN" ] || { echo "socketcan-vm: $VMCAN missing" >&2; exit 1; }
VMCAN_TIMEOUT=${VMCAN_TIMEOUT:-600} "$VMCAN" "bun scripts/bench/socketcan-vm.ts $BIN .cache/bench/ref-recvmmsg ${1:-50000} ${2:-2} ${3:-0}"
