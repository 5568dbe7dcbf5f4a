#!/usr/bin/env bash
# Heap allocations per unary call (issue 15), counted by grpcpool-alloc-count: a binary of the
# bench crate whose global allocator wraps the system's and counts every allocation,
# reallocation and free of the client process, on every thread (the pool's runtime workers
# among them), and the bytes asked for, by size class. The matrix binary does not count.
# Writes the "## Allocations per call" section of docs/benchmarks.md (a matrix run keeps it).
# Not part of CI.
#
#   bash bench/alloc_count.sh [--runs N] [--calls SMALL,LARGE] [--in-flight SMALL,LARGE]
#        [--hold-ms MS] [--out DIR] [--docs FILE | --no-docs]
#
# Rows, each against the test server (grpcpool-echo-server, release, a process of its own, so
# none of its allocations are counted), 1 KiB requests (the matrix's 1,033-byte SimpleRequest,
# as bench/call_paths.sh's), a one-day deadline, after 100 warm-up calls:
#   rust-async     sequential calls, Pool::unary awaited in a task on the pool's runtime
#   rust-blocking  sequential calls, Pool::block_on(Pool::unary(..)) from the main thread
#   held           IN-FLIGHT calls started at once, each a task of its own, held MS (1,000)
#                  by the server (x-sleep-ms) on a pool of 4 connections; the live bytes are
#                  read once every call is in flight
# Sequential rows make SMALL (200) then LARGE (2,200) calls, the held row bursts of SMALL (100)
# then LARGE (1,100) calls, each counted; per call is (count(LARGE) - count(SMALL)) /
# (LARGE - SMALL), which cancels what a loop or a burst costs once, as call_paths.sh does
# with instructions. RUNS (3) runs, rows interleaved. Results: DIR (target/alloc-count) holds
# each run's JSON line and the section, allocations.md, which goes into FILE
# (docs/benchmarks.md) in place of the one there, or at the end. Builds this checkout's release
# binaries in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/alloc-count runs=3 calls=200,2200 in_flight=100,1100 hold_ms=1000
docs=docs/benchmarks.md
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --in-flight) in_flight=$2; shift 2 ;;
    --hold-ms) hold_ms=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --docs) docs=$2; shift 2 ;;
    --no-docs) docs=; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "alloc_count: unknown option $1" >&2; exit 2 ;;
  esac
done
pair() { [[ $2 =~ ^[0-9]+,[0-9]+$ ]] && ((${2%,*} < ${2#*,})) ||
  { echo "alloc_count: $1 wants SMALL,LARGE with LARGE above SMALL" >&2; exit 2; }; }
pair --calls "$calls"
pair --in-flight "$in_flight"
[[ $runs =~ ^[1-9][0-9]*$ && $hold_ms =~ ^[0-9]+$ ]] ||
  { echo "alloc_count: --runs must be at least 1, --hold-ms a number" >&2; exit 2; }
command -v cargo >/dev/null || { echo "alloc_count: cargo is missing" >&2; exit 1; }
mkdir -p "$out"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

echo "== building (release): grpcpool-alloc-count, grpcpool-echo-server"
cargo build --quiet --release --locked -p grpcpool-bench --bin grpcpool-alloc-count
cargo build --quiet --release --locked -p grpcpool-testserver --bin grpcpool-echo-server

# Not pinned, unlike call_paths.sh: counts do not depend on the CPU, and the held row must
# start every call within half the hold.
# shellcheck source=bench/echo_server.sh
source bench/echo_server.sh
server=
trap '[[ -z $server ]] || kill "$server" 2>/dev/null || true' EXIT
start_echo_server alloc_count "$out" target/release/grpcpool-echo-server --max-streams 1024

rows=(rust-async rust-blocking held)
phase_of() { case $1 in rust-async) echo async ;; rust-blocking) echo blocking ;; held) echo held ;; esac; }
# A number from a run's JSON line, and a list of numbers (by_class) as "a,b,c".
field() { sed -n "s/.*\"$2\":\\([-0-9.e]*\\).*/\\1/p" "$1"; }
list() { sed -n "s/.*\"$2\":\\[\\([-0-9.e,]*\\)\\].*/\\1/p" "$1"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$runs"); do
  for row in "${rows[@]}"; do
    file=$out/$row-$run.json
    timeout 600 target/release/grpcpool-alloc-count --phase "$(phase_of "$row")" --target "$target" \
      --calls "$calls" --in-flight "$in_flight" --hold-ms "$hold_ms" >"$file" 2>"$out/$row-$run.err" ||
      { echo "alloc_count: $row failed:" >&2; tail -5 "$out/$row-$run.err" >&2; exit 1; }
    printf '   run %d %-13s %8s allocations, %10s bytes, %9s live bytes per call\n' "$run" "$row" \
      "$(field "$file" allocations)" "$(field "$file" bytes)" "$(field "$file" live)"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Statistics over the runs of one row: "mean" or "spread" (max - min, over the mean) of a
# field, or the mean of each size class.
values() { local row=$1 name=$2; for run in $(seq "$runs"); do field "$out/$row-$run.json" "$name"; done; }
mean() { values "$1" "$2" | awk -v d="${3:-2}" '{s += $1} END {printf "%.*f", d, s / NR}'; }
thousands() { awk -v n="$1" 'BEGIN {s = sprintf("%.0f", n < 0 ? -n : n); sign = (n < 0 && s != "0") ? "-" : ""
  for (out = ""; length(s) > 3; s = substr(s, 1, length(s) - 3)) out = "," substr(s, length(s) - 2) out
  printf "%s%s%s", sign, s, out}'; }
spread() { values "$1" "$2" | awk 'NR == 1 {lo = hi = $1} {s += $1; if ($1 < lo) lo = $1; if ($1 > hi) hi = $1}
  END {m = s / NR; if (m == 0) print "0%"; else printf "%.2f%%", (hi - lo) / m * 100}'; }
runs_of() { values "$1" "$2" | awk '{printf "%s%.2f", (NR > 1 ? " / " : ""), $1}'; }
classes() { for run in $(seq "$runs"); do list "$out/$1-$run.json" by_class; done | awk -F, '{for (i = 1; i <= NF; i++) s[i] += $i; n = NF}
  END {for (i = 1; i <= n; i++) printf " %.2f |", s[i] / NR}'; }

what_of() {
  case $1 in
    rust-async) echo '`Pool::unary` awaited in a task on the pool'"'"'s runtime' ;;
    rust-blocking) echo '`Pool::block_on(Pool::unary(..))` from the main thread' ;;
    held) echo "$(thousands "${in_flight%,*}") then $(thousands "${in_flight#*,}") calls in flight at once, each a task" ;;
  esac
}
section=$out/allocations.md
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
  echo "## Allocations per call"
  echo
  echo "Run on $(date -u +%F) on $(nproc) CPU(s)${cpu:+ ($cpu)}, Linux $(uname -r), at $(git rev-parse --short HEAD), load"
  echo "average $load_before before, $load_after after; to run it again: \`bash bench/alloc_count.sh\`"
  echo "(\`--help\` for the options; not part of CI). \`grpcpool-alloc-count\` (bench/src/bin/alloc_count)"
  echo "counts every allocation of the client process, on every thread, in a global allocator"
  echo "around the system's; the test server (release) is a process of its own. Sequential rows:"
  echo "1,024 B unary calls (the 1,033-byte request of the call-paths section), a one-day deadline,"
  echo "after 100 warm-up calls, $(thousands "${calls%,*}") then $(thousands "${calls#*,}") calls counted; per call ="
  echo "(count($(thousands "${calls#*,}")) - count($(thousands "${calls%,*}"))) / $(thousands $((${calls#*,} - ${calls%,*}))). Held row: bursts of $(thousands "${in_flight%,*}") then $(thousands "${in_flight#*,}") calls started at"
  echo "once, each the future \`Pool::unary\` returns spawned as a task, held $(thousands "$hold_ms") ms by the server"
  echo "(\`x-sleep-ms\`, one metadata entry on each call) on a pool of 4 connections, counted from"
  echo "the first start to the last answer; live bytes read once every call is in flight; per call"
  echo "in flight = difference / $(thousands $((${in_flight#*,} - ${in_flight%,*}))). $runs run(s), the rows interleaved. Bytes are those asked"
  echo "for (a realloc's new size counts); live bytes are the growth of what is allocated and not"
  echo "freed (sequential rows: what calls leave behind)."
  echo
  echo "| row | what it calls | allocations per call, runs | mean | spread | reallocs | frees | bytes asked for | live bytes |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${rows[@]}"; do
    echo "| $row | $(what_of "$row") | $(runs_of "$row" allocations) | $(mean "$row" allocations) | $(spread "$row" allocations) | $(mean "$row" reallocations) | $(mean "$row" frees) | $(thousands "$(mean "$row" bytes 0)") | $(thousands "$(mean "$row" live 0)") |"
  done
  echo
  echo "Held row, each run: bytes asked for $(values held bytes | while read -r v; do thousands "$v"; echo; done | paste -sd/ | sed 's|/| / |g'), live"
  echo "bytes per call in flight $(values held live | while read -r v; do thousands "$v"; echo; done | paste -sd/ | sed 's|/| / |g') (spread $(spread held live))."
  echo
  echo "Allocations per call by size asked for (mean of the runs; reallocations not included):"
  echo
  echo "| row | ≤ 64 B | ≤ 256 B | ≤ 1 KiB | ≤ 4 KiB | ≤ 16 KiB | > 16 KiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for row in "${rows[@]}"; do
    echo "| $row |$(classes "$row")"
  done
  echo
  echo "The future \`Pool::unary\` returns is $(thousands "$(field "$out/rust-async-1.json" future_bytes)") bytes: what each call in flight holds in its"
  echo "caller's task (in the held row, each task's allocation). To see which code allocates, run"
  echo "\`valgrind --tool=dhat target/release/grpcpool-bench ir-loop --api async --target URL --calls N\`"
  echo "at two values of N and subtract the sites' block counts."
} >"$section"

echo
cat "$section"
if [[ -n $docs ]]; then
  # In place of the section there (from its heading to the next "## " heading, as the
  # matrix's kept_section reads it), or at the end.
  heading="## Allocations per call"
  touch "$docs"
  awk -v heading="$heading" -v file="$section" '
    function flush() { while (blank > 0) { print ""; blank-- } }
    BEGIN { while ((getline line < file) > 0) text = text line "\n" }
    skipping && /^## / { skipping = 0; printf "%s\n", text }
    skipping { next }
    index($0, heading) == 1 { flush(); skipping = 1; found = 1; next }
    /^$/ { blank++; next }
    { flush(); print }
    END { if (skipping) printf "%s", text; else if (!found) printf "%s%s", (NR ? "\n" : ""), text }
  ' "$docs" >"$docs.tmp"
  mv "$docs.tmp" "$docs"
  echo
  echo "section written to $docs"
fi
