#!/usr/bin/env bash
# Proves the install paths a C or C++ user takes: `make install PREFIX=...`, then the README's
# `cc app.c $(pkg-config --cflags --libs grpcpool)` build of examples/c/hello.c, and a CMake
# project (tests/c/cmake) with `find_package(grpcpool 0.1 CONFIG REQUIRED)` building it on
# grpcpool::grpcpool and a C++ program on grpcpool::grpcpool_static, and examples/cpp/pool_demo.cpp
# built with pkg-config; each run against the echo server. A request for a version the package
# does not meet must fail. Uses the debug build the other tests already made.
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
# The C++ example: a thread pool of blocking calls, a metadata hook, an async call and acquire.
c++ -std=c++17 -Wall -Wextra -Werror examples/cpp/pool_demo.cpp $(pkg-config --cflags --libs grpcpool) -pthread \
  -o "$work/pool-demo"

cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
target/debug/grpcpool-echo-server >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do grep -q '^LISTENING ' "$work/server.out" && break; sleep 0.05; done
port=$(sed -n 's/^LISTENING //p' "$work/server.out")

output=$("$work/hello" "http://127.0.0.1:$port")
echo "$output"
grep -q '^one-shot status 0' <<<"$output"
"$work/hello-cpp"
output=$("$work/pool-demo" "http://127.0.0.1:$port")
echo "$output"
grep -q '^blocking calls: 100 of 100 OK' <<<"$output"
grep -q '^async call status 0' <<<"$output"
grep -q '^async acquire: call on the lease status 0' <<<"$output"

# CMake: configure, build and run the project against the installed prefix.
cmake -S tests/c/cmake -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Debug >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake-build" >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
output=$("$work/cmake-build/hello" "http://127.0.0.1:$port")
grep -q '^one-shot status 0' <<<"$output"
"$work/cmake-build/hello_static_cpp" "http://127.0.0.1:$port"
# The version file refuses what the package is not: another major version, or (below 1.0)
# another minor one.
mkdir -p "$work/too-new"
cat >"$work/too-new/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(too_new C)
find_package(grpcpool 1.0 CONFIG REQUIRED)
CMAKE
if cmake -S "$work/too-new" -B "$work/too-new/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  >"$work/too-new.log" 2>&1; then
  echo "find_package(grpcpool 1.0) was met by $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" >&2
  exit 1
fi
grep -q 'compatible with requested version "1.0"' "$work/too-new.log"
echo "cmake: find_package(grpcpool 0.1 CONFIG) builds, links (shared and static) and runs"
readelf -d "$work/prefix/lib/libgrpcpool.so" | grep -q 'SONAME.*libgrpcpool.so.0'
echo "install check: 1 passed, 0 failed"
