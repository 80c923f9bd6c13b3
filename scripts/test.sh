#!/bin/bash
# `npm test`: installs what the tests need (npm packages, Debian packages, the SocketCAN VM),
# then runs the host suite (`bun test`) and the SocketCAN suite inside the qemu VM.
# Exit status is non-zero if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
sh scripts/ensure-npm.sh || exit 1
bash scripts/ensure-test-deps.sh || exit 1
export PATH="$PWD/node_modules/.bin:$PATH"
rc=0
echo "== host suite: bun test"
bun test --timeout 30000 "$@" || rc=1
if [ $# -eq 0 ]; then
  echo "== SocketCAN suite (real kernel in a VM): npm run test:socketcan"
  bash scripts/test-socketcan.sh || rc=1
fi
exit $rc
