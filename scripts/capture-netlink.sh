#!/bin/bash
# Captures real RTM_NEWLINK replies of CAN interfaces in the SocketCAN VM (../shared/vmcan) into
# test/fixtures/netlink/*.hex, for the netlink parser's unit tests. An slcan interface (the kernel's
# slcan driver on a socat pty, attached by slcand) is a real can-dev device: it reports
# IFLA_CAN_STATE, IFLA_CAN_BITTIMING, the bit-rate table and the device statistics (restarts);
# vcan0 is not a can-dev device (no CAN attributes). Needs root for the VM; writes only the fixtures.
#   bash scripts/capture-netlink.sh          (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
VMCAN_DIR=${VMCAN_DIR:-$(dirname "$(pwd -P)")/shared/vmcan}
[ -x "$VMCAN_DIR/run-in-vm.sh" ] || VMCAN_DIR=/work/shared/vmcan
export PATH="$PWD/node_modules/.bin:$PATH"
VMCAN_IFACES=vcan0 VMCAN_MODULES="slcan" "$VMCAN_DIR/run-in-vm.sh" '
set -e
out=test/fixtures/netlink
cap() { bun scripts/netlink-capture.ts "$1" "$out/$2.hex"; ip -details -statistics link show "$1" > "$out/$2.ip.txt"; }
cap vcan0 vcan0
socat pty,raw,echo=0,link=/dev/ttyslA pty,raw,echo=0,link=/dev/ttyslB & sleep 1
cat /dev/ttyslB > /dev/null &
slcand -o -s6 ttyslA slcan0; sleep 1
cap slcan0 slcan0-down
ip link set slcan0 up; sleep 0.5
cap slcan0 slcan0-up-500k
ip link set slcan0 down
ip link set slcan0 type can bitrate 125000 && ip link set slcan0 up && sleep 0.5 && cap slcan0 slcan0-up-125k || echo "slcan0: bit rate not settable over netlink on this kernel"
'
ls -l test/fixtures/netlink/
