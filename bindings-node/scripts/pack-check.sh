#!/usr/bin/env bash
# Checks that `npm pack`'s tarball installs the way the repository does: packs the package,
# installs the tarball into a scratch project (the install script builds the bundled Rust
# sources with cargo; debug here, and into the repository's target/ so crates are reused), then
# loads it and makes a call.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
npm pack --pack-destination "$scratch" --loglevel=error >/dev/null
tarball="$(ls "$scratch"/grpcpool-*.tgz)"
echo "packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"

mkdir -p "$scratch/project"
cd "$scratch/project"
npm init -y --loglevel=error >/dev/null
GRPCPOOL_NODE_PROFILE=debug CARGO_TARGET_DIR="$OLDPWD/../target" \
  npm install --no-audit --no-fund --loglevel=error "$tarball"
node -e "
const { Pool, GrpcError, Status } = require('grpcpool');
const pool = new Pool();
pool.unary('http://127.0.0.1:1', '/p.S/M', Buffer.alloc(0), { timeoutMs: 2000 }).then(
  () => { console.error('a call to a closed port succeeded'); process.exit(1); },
  (error) => {
    if (!(error instanceof GrpcError) || error.code !== Status.UNAVAILABLE) { console.error(error); process.exit(1); }
    console.log('the tarball installs, loads and calls');
    return pool.close();
  });
"
