#!/usr/bin/env bash
# Regenerates every generated file from its source. Today: include/grpcpool.h from ffi/ with
# the cbindgen version pinned in tools/gen-header/Cargo.toml. `--check` fails on a stale copy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --locked -p grpcpool-gen-header -- "$@"
