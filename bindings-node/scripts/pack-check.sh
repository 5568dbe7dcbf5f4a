#!/usr/bin/env bash
# Checks that `npm pack`'s tarball installs: packs the package (with a prebuilt addon for this
# machine, GRPCPOOL_NODE_PREBUILD_PROFILE=debug unless set: quick, reusing the debug build
# test.sh made), checks the tarball carries it, then installs the tarball into a scratch
# project with a PATH that has no cargo, which proves the prebuilt is used, and loads it and
# makes a call. With --from-source it also installs the same tarball with
# GRPCPOOL_NODE_BUILD_FROM_SOURCE=1, building the bundled Rust sources (the fallback; slow,
# debug, into the repository's target/ so crates are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
package_dir="$(pwd)"

from_source=false
case "${1:-}" in
  --from-source) from_source=true ;;
  "") ;;
  *) echo "usage: $0 [--from-source]" >&2; exit 2 ;;
esac

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
GRPCPOOL_NODE_PREBUILD_PROFILE="${GRPCPOOL_NODE_PREBUILD_PROFILE:-debug}" \
  npm pack --pack-destination "$scratch" --loglevel=error >/dev/null
tarball="$(ls "$scratch"/grpcpool-*.tgz)"
echo "packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
key="$(node -e "process.stdout.write(require('./scripts/prebuilt').platformKey())")"
if ! tar -tzf "$tarball" | grep -x "package/prebuilds/$key/grpcpool.node" >/dev/null; then
  echo "the tarball has no prebuilt addon for $key" >&2
  exit 1
fi

# PATH without the directories that hold cargo or rustup (node and npm stay).
no_cargo_path="$(node -e "
const fs = require('node:fs');
const path = require('node:path');
const has = (dir, name) => fs.existsSync(path.join(dir, name));
process.stdout.write(process.env.PATH.split(':').filter((dir) => dir && !has(dir, 'cargo') && !has(dir, 'rustup')).join(':'));
")"
if PATH="$no_cargo_path" command -v cargo >/dev/null 2>&1; then
  echo "could not make a PATH without cargo" >&2
  exit 1
fi

call_check() {
  node -e "
const { Pool, GrpcError, Status } = require('grpcpool');
const pool = new Pool();
pool.unary('http://127.0.0.1:1', '/p.S/M', Buffer.alloc(0), { timeoutMs: 2000 }).then(
  () => { console.error('a call to a closed port succeeded'); process.exit(1); },
  (error) => {
    if (!(error instanceof GrpcError) || error.code !== Status.UNAVAILABLE) { console.error(error); process.exit(1); }
    console.log('the tarball installs ($1), loads and calls');
    return pool.close();
  });
"
}

mkdir -p "$scratch/prebuilt"
(
  cd "$scratch/prebuilt"
  npm init -y --loglevel=error >/dev/null
  PATH="$no_cargo_path" npm install --no-audit --no-fund --loglevel=error "$tarball"
  call_check "prebuilt, no cargo on PATH"
)

if $from_source; then
  mkdir -p "$scratch/source"
  (
    cd "$scratch/source"
    npm init -y --loglevel=error >/dev/null
    GRPCPOOL_NODE_BUILD_FROM_SOURCE=1 GRPCPOOL_NODE_PROFILE=debug CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$package_dir/../target}" \
      npm install --no-audit --no-fund --loglevel=error "$tarball"
    call_check "built from the bundled sources"
  )
fi
