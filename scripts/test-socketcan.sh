#!/bin/bash
# `npm run test:socketcan`: the SocketCAN suite (test/socketcan) against a real kernel.
# 1. Builds the compiled binary on the host, with the receive worker as an extra entrypoint
#    (that is the point: proving the worker is embedded), into dist/socketcan-test/ — unless
#    CAN_SERVER_BINARY names an already built binary to test instead.
# 2. Runs `bun test test/socketcan` directly when this host has SocketCAN and vcan0, otherwise
#    inside the throw-away qemu VM of ../shared/vmcan (resolved beside the repository, so a CI
#    clone in any folder works as long as shared/ sits next to it), building the guest first
#    if needed (setup.sh needs root).
# Extra arguments go to `bun test` (e.g. a file filter). Exit status non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
export PATH="$REPO/node_modules/.bin:$PATH"
rc=0

if [ -n "${CAN_SERVER_BINARY:-}" ]; then
  # A release pipeline may hand in the binary it built; it must be an absolute path.
  echo "== testing the given binary CAN_SERVER_BINARY=$CAN_SERVER_BINARY"
  [ -x "$CAN_SERVER_BINARY" ] || { echo "test-socketcan: $CAN_SERVER_BINARY is not an executable" >&2; rc=1; }
else
  BIN_DIR=dist/socketcan-test
  rm -rf "$BIN_DIR" && mkdir -p "$BIN_DIR"
  echo "== building the compiled binary (worker as extra entrypoint) into $BIN_DIR"
  if bun build --compile src/main.ts src/backends/socketcan/rx-worker.ts --outfile "$BIN_DIR/can-server" >"$BIN_DIR/build.log" 2>&1; then
    export CAN_SERVER_BINARY="$REPO/$BIN_DIR/can-server"
  else
    cat "$BIN_DIR/build.log" >&2
    echo "test-socketcan: building the compiled binary failed; its tests will be skipped" >&2
    rc=1
  fi
fi

# SOCKETCAN_TESTS narrows the run (e.g. the soak's link-cycle test); SOAK_VM_CYCLES passes through.
TEST_CMD="${SOAK_VM_CYCLES:+SOAK_VM_CYCLES=$SOAK_VM_CYCLES }bun test --timeout 600000 ${SOCKETCAN_TESTS:-test/socketcan} $*"
if [ -d /proc/net/can ] && [ -e /sys/class/net/vcan0 ]; then
  echo "== SocketCAN suite on this host's kernel: $TEST_CMD"
  bash -c "$TEST_CMD" || rc=1
  exit $rc
fi

VMCAN_DIR=$(dirname "$REPO")/shared/vmcan
if [ ! -x "$VMCAN_DIR/run-in-vm.sh" ]; then
  echo "test-socketcan: this kernel has no SocketCAN/vcan0 and $VMCAN_DIR/run-in-vm.sh is missing (shared/ must sit beside the repository)" >&2
  exit 1
fi
GUEST=${VMCAN_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmcan}
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -f "$GUEST/initramfs.cpio" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== setting up the SocketCAN VM: $VMCAN_DIR/setup.sh"
    "$VMCAN_DIR/setup.sh" || exit 1
  else
    echo "test-socketcan: the SocketCAN VM is not set up; run: sudo $VMCAN_DIR/setup.sh" >&2
    exit 1
  fi
fi
echo "== SocketCAN suite inside the VM (real kernel, vcan0): $TEST_CMD"
VMCAN_IFACES=vcan0 "$VMCAN_DIR/run-in-vm.sh" "$TEST_CMD" || rc=1
exit $rc
