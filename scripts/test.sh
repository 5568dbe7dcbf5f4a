#!/usr/bin/env bash
# Runs every test of grpcpool: formatting, lints, generated files, the Rust workspace's unit and
# integration tests against in-process tonic servers, and the C ABI's C/C++ programs under
# AddressSanitizer and valgrind, plus the `make install` + pkg-config path, and the gRPC
# interop cases against the grpc-go interop server, the Python package against grpcio and the
# Node package against @grpc/grpc-js, and the parity suite that runs the same scenarios through
# the C, Python and Node faces, the fault suite (tests/faults) through the core and Python, and
# the fuzz targets (fuzz/) for a bounded time under AddressSanitizer.
# `cargo test` includes core/tests/xds.rs, which builds tests/xds (a go-control-plane xDS
# control plane, modules pinned by its go.mod and go.sum) with `go build`: it needs Go on PATH
# and the Go module proxy on a fresh machine. So does the parity suite's discovery part, which
# also builds tests/xds/client (grpc-go's own xDS client, the reference for xds:/// targets).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz workspace checks without its sanitizer flags, in a directory of its own.
CARGO_TARGET_DIR=fuzz/target/check cargo clippy --manifest-path fuzz/Cargo.toml --bins --locked \
  -- -D warnings

echo "== generated files are current"
bash scripts/gen-header.sh --check

echo "== cargo test"
cargo test --workspace --locked

echo "== C ABI: C and C++ programs under ASan/UBSan and valgrind"
bash tests/c/run.sh

echo "== C ABI: make install, then pkg-config and CMake builds against the prefix"
bash tests/c/install_check.sh

echo "== Python: the grpcpool wheel, mypy --strict and pytest against a grpcio server"
bash bindings-python/test.sh

echo "== Node: the grpcpool addon, tsc --strict and node --test against a grpc-js server"
bash bindings-node/test.sh

echo "== parity: the same scenarios through C, Python and Node against one server"
bash tests/parity/run.sh

echo "== fault suite: kills, GOAWAY storms, blackholes, slow and dead peers (core, then Python)"
bash tests/faults/run.sh

echo "== fuzzing: every fuzz target under ASan for a bounded time, crash inputs replayed"
bash fuzz/run.sh

echo "== gRPC interop cases against the grpc-go interop server"
bash tests/interop/run.sh
