#!/usr/bin/env bash
# Runs every test of grpcpool: formatting, lints, then the Rust workspace's unit and
# integration tests against in-process tonic servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked
