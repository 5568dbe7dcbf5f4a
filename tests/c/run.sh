#!/usr/bin/env bash
# Builds libgrpcpool and the standalone echo server, starts echo servers on loopback, then
# compiles every tests/c/*.c (gcc) and tests/c/*.cpp (g++) against include/ and runs each
# under AddressSanitizer + UBSan (leak checking on), and the C ones once more under valgrind
# when VALGRIND=1 (the default in CI), with GRPCPOOL_TEST_LIGHT=1 so that heavy tests shrink their
# loops. Prints "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
build="$root/target/c-tests"
mkdir -p "$build"

cargo build --quiet --locked -p grpcpool-ffi --lib
cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
lib_dir="$root/target/debug"
server_bin="$lib_dir/grpcpool-echo-server"
# The library's soname carries the major version; the build tree has only the plain name.
ln -sf libgrpcpool.so "$lib_dir/libgrpcpool.so.0"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts an echo server with the given arguments and sets the variable named by $1 to its port.
# (Not run in a command substitution: that subshell would keep the pid from the cleanup list.)
start_server() {
  local var=$1; shift
  local out="$build/server-$var.out"
  # The background job truncates $out only when it gets to run: a file left by the previous
  # run would hand us its (dead) port first.
  rm -f "$out"
  "$server_bin" "$@" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if grep -q '^LISTENING ' "$out"; then
      printf -v "$var" '%s' "$(sed -n 's/^LISTENING //p' "$out")"
      return 0
    fi
    sleep 0.05
  done
  echo "echo server did not start: $(cat "$out")" >&2
  return 1
}

start_server plain_port
start_server limited_port --max-streams 2
start_server tls_port --tls-out "$build/tls"
# Three servers on three loopback addresses behind one target, for the balancing policies.
start_server second_port --ip 127.0.0.2
start_server third_port --ip 127.0.0.3
export GRPCPOOL_TEST_TARGET="http://127.0.0.1:$plain_port"
export GRPCPOOL_TEST_THREE_TARGET="http://127.0.0.1:$plain_port,127.0.0.2:$second_port,127.0.0.3:$third_port"
export GRPCPOOL_TEST_TARGET_LIMITED="http://127.0.0.1:$limited_port"
export GRPCPOOL_TEST_TLS_TARGET="https://127.0.0.1:$tls_port"
export GRPCPOOL_TEST_CA_FILE="$build/tls/ca.pem"

passed=0
failed=0
failures=()
run() {
  local name=$1; shift
  # A hung test fails after 4 minutes instead of stalling the run.
  if timeout --kill-after=10 240 "$@" >"$build/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "FAIL $name"; tail -n 40 "$build/$name.log"
  fi
}

sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$root/tests/c/lsan.supp:print_suppressions=0"
link="-L$lib_dir -lgrpcpool -Wl,-rpath,$lib_dir -lpthread -ldl -lm"

for source in tests/c/*.c; do
  name=$(basename "$source" .c)
  gcc -std=c11 -Wall -Wextra -Werror -g $sanitize -Iinclude "$source" -o "$build/$name" $link
  run "$name (asan)" "$build/$name"
done
for source in tests/c/*.cpp; do
  [ -e "$source" ] || continue
  name=$(basename "$source" .cpp)
  g++ -std=c++17 -Wall -Wextra -Werror -g $sanitize -Iinclude "$source" -o "$build/$name" $link
  run "$name (asan)" "$build/$name"
done

if [ "${VALGRIND:-1}" = "1" ] && command -v valgrind >/dev/null; then
  for source in tests/c/*.c; do
    name=$(basename "$source" .c)
    gcc -std=c11 -Wall -Wextra -Werror -g -Iinclude "$source" -o "$build/$name-plain" $link
    run "$name (valgrind)" env GRPCPOOL_TEST_LIGHT=1 valgrind --quiet --num-callers=40 --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      --suppressions="$root/tests/c/valgrind.supp" "$build/$name-plain"
  done
fi

echo "C ABI: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
