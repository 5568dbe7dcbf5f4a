#!/usr/bin/env bash
# Instructions per call (valgrind's callgrind) of each way to make a unary call at concurrency 1,
# side by side in one run: the repeatable figure on a shared machine, beside the matrix's times
# (issue 15's baseline: what a blocking call costs over an async one). Not part of CI.
#
#   bash bench/call_paths.sh [--runs N] [--small N] [--large N] [--out DIR]
#
# Rows, each sequential 1 KiB calls echoed by the test server (grpcpool-echo-server, release,
# a process of its own, not under valgrind), a one-day deadline, after 100 warm-up calls:
#   rust-async     Pool::unary awaited in a task on the pool's runtime (grpcpool-bench ir-loop)
#   rust-blocking  Pool::block_on(Pool::unary(..)) from the main thread (ir-loop)
#   c-blocking     grpcpool_unary (bench/c/policy_cost.c)
#   c-async        grpcpool_unary_async, each completion starting the next (policy_cost.c)
# Each runs SMALL (200) and LARGE (2,200) calls under callgrind, RUNS (3) times, rows
# interleaved; Ir per call is (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL), every thread counted,
# valgrind pinned to the last CPU with --fair-sched=yes and the server to the first, as
# bench/policy_cost.sh does (see there why). Builds this checkout's release binaries in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/call-paths runs=3 small=200 large=2200
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --small) small=$2; shift 2 ;;
    --large) large=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "call_paths: unknown option $1" >&2; exit 2 ;;
  esac
done
((large > small && runs >= 1)) || { echo "call_paths: --large must be above --small" >&2; exit 2; }
for tool in valgrind cc cargo; do
  command -v "$tool" >/dev/null || { echo "call_paths: $tool is missing" >&2; exit 1; }
done
mkdir -p "$out"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

echo "== building (release): libgrpcpool.so, grpcpool-bench, grpcpool-echo-server"
cargo build --quiet --release --locked -p grpcpool-ffi -p grpcpool-bench
cargo build --quiet --release --locked -p grpcpool-testserver --bin grpcpool-echo-server
ln -sf libgrpcpool.so target/release/libgrpcpool.so.0
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/c/policy_cost.c -o "$out/policy_cost" \
  -Ltarget/release -lgrpcpool -Wl,-rpath,"$(pwd)/target/release" -lpthread -ldl -lm

client_pin=() server_pin=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
  client_pin=(taskset -c $(($(nproc) - 1)))
  server_pin=(taskset -c 0)
fi
# shellcheck source=bench/echo_server.sh
source bench/echo_server.sh
server=
trap '[[ -z $server ]] || kill "$server" 2>/dev/null || true' EXIT
start_echo_server call_paths "$out" "${server_pin[@]}" target/release/grpcpool-echo-server

rows=(rust-async rust-blocking c-blocking c-async)
command_of() { # row calls
  case $1 in
    rust-async) echo target/release/grpcpool-bench ir-loop --api async --target "$target" --calls "$2" ;;
    rust-blocking) echo target/release/grpcpool-bench ir-loop --api blocking --target "$target" --calls "$2" ;;
    c-blocking) echo "$out/policy_cost" --api blocking --target "$target" --calls "$2" ;;
    c-async) echo "$out/policy_cost" --api async --target "$target" --calls "$2" ;;
  esac
}
declare -A ir
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$runs"); do
  for row in "${rows[@]}"; do
    for calls in "$small" "$large"; do
      file=$out/$row-$calls-$run.callgrind
      # shellcheck disable=SC2046 # the command's words
      timeout 1800 "${client_pin[@]}" valgrind --tool=callgrind --fair-sched=yes \
        --callgrind-out-file="$file" $(command_of "$row" "$calls") >"$out/$row-$calls-$run.stdout" \
        2>"$out/$row-$calls-$run.valgrind" ||
        { echo "call_paths: $row with $calls calls failed:" >&2; tail -5 "$out/$row-$calls-$run.valgrind" >&2; exit 1; }
      ir[$row,$calls,$run]=$(awk '/^(summary|totals):/{print $2; exit}' "$file")
      printf '   run %d %-13s %5d calls: %12s Ir\n' "$run" "$row" "$calls" "${ir[$row,$calls,$run]}"
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "date: $(date -u +%F); $(nproc) CPU(s), Linux $(uname -r); $(valgrind --version); commit $(git rev-parse --short HEAD)"
echo "load average before: $load_before; after: $load_after"
echo
echo "| row | Ir per call, each run | mean | spread | / rust-async |"
echo "|---|---:|---:|---:|---:|"
declare -A mean
for row in "${rows[@]}"; do
  values=()
  for run in $(seq "$runs"); do
    values+=("$(awk -v a="${ir[$row,$large,$run]}" -v b="${ir[$row,$small,$run]}" -v n=$((large - small)) 'BEGIN {printf "%.0f", (a - b) / n}')")
  done
  mean[$row]=$(printf '%s\n' "${values[@]}" | awk '{s += $1} END {printf "%.0f", s / NR}')
  spread=$(printf '%s\n' "${values[@]}" | awk -v m="${mean[$row]}" 'NR == 1 {lo = hi = $1} {if ($1 < lo) lo = $1; if ($1 > hi) hi = $1} END {printf "%.2f%%", (hi - lo) / m * 100}')
  ratio=$(awk -v a="${mean[$row]}" -v b="${mean[rust-async]}" 'BEGIN {printf "%.3f", a / b}')
  echo "| $row | $(IFS=/; echo "${values[*]}" | sed 's|/| / |g') | ${mean[$row]} | $spread | $ratio |"
done
