#!/usr/bin/env bash
# Tests the Node package: installs the dev tools (npm ci, from the committed lockfile), builds
# the addon (debug) with the package's own install script and the repository's echo server
# (testserver/), checks that the generated native.d.ts is current, type-checks the public
# types with tsc --strict, compiles the `await using` test with tsc, then runs node --test
# against real @grpc/grpc-js servers and the echo server. Every cargo build honours
# CARGO_TARGET_DIR.
# Installs the package from `npm pack`'s tarball (carrying the debug addon as its prebuilt) into
# a scratch project with no cargo on PATH and makes a call with it, and runs examples/node.
# Needs only Node (18+; 20 here), npm and Rust. GRPCPOOL_NODE_PACK_CHECK=1 also installs the
# tarball building from its bundled sources, the fallback without a prebuilt (slow: a full
# build of them).
set -euo pipefail
cd "$(dirname "$0")"

echo "== npm ci (dev tools)"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

echo "== building the addon (debug) with scripts/install.js"
GRPCPOOL_NODE_PROFILE=debug node scripts/install.js

echo "== building the repository's echo server (the compression tests read what it received)"
cargo build --manifest-path ../Cargo.toml -p grpcpool-testserver --bin grpcpool-echo-server

echo "== native.d.ts is current"
bash scripts/gen-types.sh --check

echo "== tsc --noEmit --strict (index.d.ts, native.d.ts, test/ts/usage.ts)"
node_modules/.bin/tsc -p tsconfig.json

echo "== tsc: compiling the await using test"
rm -rf test/build
node_modules/.bin/tsc -p test/ts/tsconfig.json

if [ "${GRPCPOOL_NODE_PACK_CHECK:-0}" = 1 ]; then
  echo "== npm pack, then npm install of the tarball: the prebuilt with no cargo, and from source"
  bash scripts/pack-check.sh --from-source
else
  echo "== npm pack, then npm install of the tarball with no cargo on PATH (the prebuilt)"
  bash scripts/pack-check.sh
fi

echo "== examples/node/greeter.js (a grpc-js client over grpcpool.Channel)"
# As an installed copy sees it: \`require('grpcpool')\` and the dev tools' grpc-js.
example_modules="$(mktemp -d)"
trap 'rm -rf "$example_modules"' EXIT
ln -s "$(pwd)" "$example_modules/grpcpool"
NODE_PATH="$example_modules:$(pwd)/node_modules" node ../examples/node/greeter.js >/dev/null

echo "== node --test"
node --expose-gc --test test/*.test.js test/build/*.test.js
