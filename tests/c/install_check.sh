#!/usr/bin/env bash
# Proves the install path a C user takes: `make install PREFIX=...`, then the README's
# `cc app.c $(pkg-config --cflags --libs grpcpool)` build of examples/c/hello.c, run against
# the echo server. Uses the debug build the other tests already made.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
server_pid=""
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT

make --quiet install PREFIX="$work/prefix" PROFILE=debug >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cc examples/c/hello.c $(pkg-config --cflags --libs grpcpool) -o "$work/hello"
c++ -std=c++17 -x c++ - $(pkg-config --cflags --libs grpcpool) -o "$work/hello-cpp" <<'CPP'
#include <grpcpool.hpp>
int main() { grpcpool::Config config; grpcpool::Pool pool(config); return 0; }
CPP

cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
target/debug/grpcpool-echo-server >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do grep -q '^LISTENING ' "$work/server.out" && break; sleep 0.05; done
port=$(sed -n 's/^LISTENING //p' "$work/server.out")

output=$("$work/hello" "http://127.0.0.1:$port")
echo "$output"
grep -q '^one-shot status 0' <<<"$output"
"$work/hello-cpp"
readelf -d "$work/prefix/lib/libgrpcpool.so" | grep -q 'SONAME.*libgrpcpool.so.0'
echo "install check: 1 passed, 0 failed"
