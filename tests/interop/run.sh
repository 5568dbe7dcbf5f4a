#!/usr/bin/env bash
# The gRPC interop cases through grpcpool against the grpc-go interop server: installs the
# server with `go install` (pinned) when it is missing, then runs tests/interop's client, which
# runs every case through the Rust core and the listed ones through the other faces' clients
# (C through include/grpcpool.h; Python, which needs the venv bindings-python/test.sh makes;
# Node, which needs the addon and dev tools bindings-node/test.sh builds), prints each case and
# "N passed, N failed" per face and transport, and fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

server="$(bash scripts/go-interop-server.sh)"

faces=()

# C: the interop client built against the debug library.
cargo build --quiet --locked -p grpcpool-ffi --lib
ln -sf libgrpcpool.so target/debug/libgrpcpool.so.0
gcc -Wall -Wextra -Werror -std=c11 -Iinclude tests/interop/c/interop_client.c \
  -Ltarget/debug -lgrpcpool -Wl,-rpath,"$PWD/target/debug" -o target/debug/interop-c
faces+=(--face "c=$PWD/target/debug/interop-c")

python="target/python-venv/bin/python"
if [ ! -x "$python" ]; then
  echo "the Python face needs the venv: run bindings-python/test.sh first" >&2
  exit 1
fi
faces+=(--face "python=$PWD/$python $PWD/tests/interop/python/client.py")

if [ ! -d bindings-node/node_modules ] || [ ! -e bindings-node/grpcpool.node ]; then
  echo "the Node face needs the addon: run bindings-node/test.sh first" >&2
  exit 1
fi
faces+=(--face "node=node $PWD/tests/interop/node/client.js")

cargo build --quiet --locked -p grpcpool-interop
GRPCPOOL_INTEROP_SERVER="$server" target/debug/grpcpool-interop "${faces[@]}"
