#!/bin/sh
# Installs the npm dependencies (Bun itself comes from the npm registry, pinned in package.json)
# when they are missing, so `npm start` and `npm test` work on a fresh clone without Bun.
set -e
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "can-server: installing npm dependencies (npm ci)..." >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
