#!/usr/bin/env bash
# Regenerates native.d.ts, the TypeScript types napi-rs generates from the addon's Rust (every
# #[napi] item and its doc comment). With --check, regenerates into a temporary directory and
# fails when the checked-in copy is stale. Installs the npm dev tools (npm ci) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [ ! -x node_modules/.bin/napi ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# The addon napi builds here is thrown away; only the types are kept.
node_modules/.bin/napi build --manifest-path Cargo.toml --package-json-path package.json \
  --output-dir "$out" --dts native.d.ts --no-const-enum --no-dts-cache >"$out/build.log" 2>&1 \
  || { cat "$out/build.log" >&2; exit 1; }

if $check; then
  if ! diff -u native.d.ts "$out/native.d.ts"; then
    echo "bindings-node/native.d.ts is stale: run bindings-node/scripts/gen-types.sh" >&2
    exit 1
  fi
  echo "bindings-node/native.d.ts is current"
else
  cp "$out/native.d.ts" native.d.ts
  echo "wrote bindings-node/native.d.ts"
fi
