#!/usr/bin/env bash
# Regenerates every generated file from its source: include/grpcpool.h from ffi/ with the
# cbindgen version pinned in tools/gen-header/Cargo.toml, and bindings-node/native.d.ts from the
# addon's #[napi] items with napi-rs's CLI (pinned in bindings-node/package-lock.json).
# `--check` regenerates aside and fails on a stale checked-in copy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --locked -p grpcpool-gen-header -- "$@"
bash bindings-node/scripts/gen-types.sh "$@"
