#!/usr/bin/env bash
# What the policy layer (the service config) costs on the hot path, as instructions per call
# under valgrind's callgrind: the repeatable figure on a shared machine, where wall time and
# CPU time are not. Not part of CI; see "Policy layer cost" in docs/benchmarks.md.
#
#   bash bench/policy_cost.sh [options] [OLD [NEW]]
#
# OLD defaults to 37ba110 (the last commit before the service config), NEW to HEAD. Both are
# checked out as detached worktrees (WORK/old-OLD, WORK/new-NEW; one already there at the right
# commit is used and kept, the ones made here are removed at the end), each libgrpcpool.so is
# built in release with a target dir of its own (WORK/tgt-old, WORK/tgt-new), so neither this
# checkout's working tree nor its target/ is touched, and bench/c/policy_cost.c from this
# checkout is compiled against each commit's header and library. The echo server
# (grpcpool-echo-server from NEW, release) runs as a process of its own, not under valgrind.
#
# Three rows: the old library; the new one with no service config; the new one with a retry
# policy for the Echo service (no call fails, so nothing is retried). Each row runs SMALL and
# LARGE sequential 1 KiB calls, each with a one-day deadline (after 100 warm-up calls; see
# policy_cost.c for why a day), under callgrind, RUNS times, the rows
# interleaved; Ir per call is (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL), which cancels start-up
# and pool creation. Every thread's instructions count. The old library must refuse the service
# config (checked).
#
# Repeatability: valgrind runs one thread at a time, and which thread takes its lock when one
# wakes another is a race the kernel decides; a thread that wins it while the other holds a
# mutex spins on it (h2's stream store, ~1-2% of a call). Run loose, the same row moved by 1-4%
# between runs (worker_threads 1 did not help); so valgrind runs pinned to one CPU with
# --fair-sched=yes (a FIFO hand-over) and the server on another. That left about 1%, from a
# 30 s deadline's grpc-timeout, new on every call; with the one-day deadline the same row
# repeats within a few tenths of a percent.
#
# Options: --work DIR (worktrees and target dirs; default /work, or $TMPDIR without it),
#   --out DIR (callgrind files; default WORK/policy-cost-out), --small N (200), --large N (2200),
#   --runs N (3), --worker-threads K (the pool's worker_threads in every row; default: the
#   library's default), --old-tree DIR, --new-tree DIR (the worktrees' paths), --keep-worktrees.
# CARGO_BUILD_JOBS defaults to 1: the machine is shared.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
if [[ -d /work ]]; then work=/work; else work=${TMPDIR:-/tmp}; fi
out= small=200 large=2200 runs=3 worker_threads= old_tree= new_tree= keep=0
positional=()
while (($#)); do
  case $1 in
    --work) work=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --small) small=$2; shift 2 ;;
    --large) large=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --worker-threads) worker_threads=$2; shift 2 ;;
    --old-tree) old_tree=$2; shift 2 ;;
    --new-tree) new_tree=$2; shift 2 ;;
    --keep-worktrees) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "policy_cost: unknown option $1" >&2; exit 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
old_arg=${positional[0]:-37ba110}
new_arg=${positional[1]:-HEAD}
old_rev=$(git -C "$repo" rev-parse --verify "$old_arg^{commit}")
new_rev=$(git -C "$repo" rev-parse --verify "$new_arg^{commit}")
out=${out:-$work/policy-cost-out}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
retry_config='{"methodConfig":[{"name":[{"service":"grpcpool.test.Echo"}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}'

for tool in valgrind cc cargo git; do
  command -v "$tool" >/dev/null || { echo "policy_cost: $tool is missing" >&2; exit 1; }
done
((large > small && runs >= 1)) || { echo "policy_cost: --large must be above --small, --runs at least 1" >&2; exit 2; }
mkdir -p "$work" "$out"
started=$SECONDS

name() { tr 'A-Z' 'a-z' <<<"$1" | tr -c 'a-z0-9._\n-' '_'; }
old_tree=${old_tree:-$work/old-$(name "$old_arg")}
new_tree=${new_tree:-$work/new-$(name "$new_arg")}
made_trees=()
server=

cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if ((!keep)); then
    for tree in "${made_trees[@]}"; do git -C "$repo" worktree remove --force "$tree" || true; done
  fi
}
trap cleanup EXIT

worktree() { # dir rev
  if [[ -e $1 ]]; then
    [[ $(git -C "$1" rev-parse HEAD 2>/dev/null) == "$2" ]] ||
      { echo "policy_cost: $1 exists and is not a worktree at $2" >&2; exit 1; }
  else
    git -C "$repo" worktree add --quiet --detach "$1" "$2"
    made_trees+=("$1")
  fi
}
worktree "$old_tree" "$old_rev"
worktree "$new_tree" "$new_rev"

build_started=$SECONDS
echo "== building libgrpcpool.so (release) at ${old_rev:0:12} and ${new_rev:0:12}, the echo server at ${new_rev:0:12}"
(cd "$old_tree" && CARGO_TARGET_DIR=$work/tgt-old cargo build --quiet --release --locked -p grpcpool-ffi)
(cd "$new_tree" && CARGO_TARGET_DIR=$work/tgt-new cargo build --quiet --release --locked -p grpcpool-ffi)
(cd "$new_tree" && CARGO_TARGET_DIR=$work/tgt-new cargo build --quiet --release --locked \
  -p grpcpool-testserver --bin grpcpool-echo-server)
build_seconds=$((SECONDS - build_started))

program() { # side tree target_dir: builds $out/policy_cost-side against that tree's library
  local lib=$out/lib-$1
  mkdir -p "$lib"
  ln -sf "$3/release/libgrpcpool.so" "$lib/libgrpcpool.so"
  ln -sf "$3/release/libgrpcpool.so" "$lib/libgrpcpool.so.0" # its soname
  cc -std=c11 -O2 -Wall -Wextra -Werror -I"$2/include" "$repo/bench/c/policy_cost.c" \
    -o "$out/policy_cost-$1" -L"$lib" -lgrpcpool -Wl,-rpath,"$lib" -lpthread -ldl -lm
}
program old "$old_tree" "$work/tgt-old"
program new "$new_tree" "$work/tgt-new"

# valgrind on the last CPU, the server on the first (when there are two and taskset).
client_pin=() server_pin=()
cpus=$(nproc)
if command -v taskset >/dev/null && ((cpus >= 2)); then
  client_pin=(taskset -c $((cpus - 1)))
  server_pin=(taskset -c 0)
fi
# shellcheck source=bench/echo_server.sh
source "$repo/bench/echo_server.sh"
start_echo_server policy_cost "$out" "${server_pin[@]}" "$work/tgt-new/release/grpcpool-echo-server"
extra=()
[[ -n $worker_threads ]] && extra=(--worker-threads "$worker_threads")

# The old library has no service_config setting: it must refuse it, not ignore it.
if GRPCPOOL_SERVICE_CONFIG=$retry_config "$out/policy_cost-old" --target "$target" --calls 1 \
  "${extra[@]}" >/dev/null 2>"$out/old-refuses.err"; then
  echo "policy_cost: the old library took a service config; it is not from before the policy layer" >&2
  exit 1
fi
GRPCPOOL_SERVICE_CONFIG=$retry_config "$out/policy_cost-new" --target "$target" --calls 1 \
  "${extra[@]}" >/dev/null || { echo "policy_cost: the new library refused the retry config" >&2; exit 1; }

rows=(old new retry)
declare -A label=(
  [old]="old library (${old_rev:0:7})"
  [new]="new library (${new_rev:0:7}), no service config"
  [retry]="new library (${new_rev:0:7}), retry policy, no failures")
declare -A ir

measure() { # row calls run
  local side=new file=$out/$1-$2-$3.callgrind
  local env=(env -u GRPCPOOL_SERVICE_CONFIG)
  [[ $1 == old ]] && side=old
  [[ $1 == retry ]] && env=(env "GRPCPOOL_SERVICE_CONFIG=$retry_config")
  "${env[@]}" timeout 1800 "${client_pin[@]}" valgrind --tool=callgrind --fair-sched=yes \
    --callgrind-out-file="$file" "$out/policy_cost-$side" --target "$target" --calls "$2" "${extra[@]}" \
    >"$out/$1-$2-$3.stdout" 2>"$out/$1-$2-$3.valgrind" ||
    { echo "policy_cost: $1 with $2 calls failed:" >&2; tail -5 "$out/$1-$2-$3.valgrind" >&2; exit 1; }
  ir[$1,$2,$3]=$(awk '/^(summary|totals):/{print $2; exit}' "$file")
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
measure_started=$SECONDS
echo "== callgrind: ${rows[*]} x $small and $large calls x $runs runs, target $target${worker_threads:+, worker_threads $worker_threads}${client_pin:+, valgrind on CPU $((cpus - 1)), server on CPU 0}"
for run in $(seq "$runs"); do
  for row in "${rows[@]}"; do
    for calls in "$small" "$large"; do
      measure "$row" "$calls" "$run"
      printf '   run %d %-5s %5d calls: %12s Ir\n' "$run" "$row" "$calls" "${ir[$row,$calls,$run]}"
    done
  done
done
measure_seconds=$((SECONDS - measure_started))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

per_call() { # row run
  awk -v a="${ir[$1,$large,$2]}" -v b="${ir[$1,$small,$2]}" -v n=$((large - small)) \
    'BEGIN {printf "%.0f", (a - b) / n}'
}
declare -A mean
model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
memory=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
echo
echo "date: $(date -u +%F); $cpus CPU(s) (${model:-unknown}), $memory, Linux $(uname -r); $(valgrind --version), $(rustc --version | cut -d' ' -f1-2)"
echo "load average before: $load_before; after: $load_after"
echo "old: $old_rev"
echo "new: $new_rev"
echo
echo "| row | Ir per call, each run | mean | spread (max - min) / mean |"
echo "|---|---:|---:|---:|"
for row in "${rows[@]}"; do
  values=()
  for run in $(seq "$runs"); do values+=("$(per_call "$row" "$run")"); done
  mean[$row]=$(printf '%s\n' "${values[@]}" | awk '{s += $1} END {printf "%.0f", s / NR}')
  spread=$(printf '%s\n' "${values[@]}" | awk -v m="${mean[$row]}" \
    'NR == 1 {lo = $1; hi = $1} {if ($1 < lo) lo = $1; if ($1 > hi) hi = $1} END {printf "%.2f%%", (hi - lo) / m * 100}')
  joined=$(printf '%s / ' "${values[@]}")
  echo "| ${label[$row]} | ${joined% / } | ${mean[$row]} | $spread |"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t ? "met" : "MISSED")}'; }
new_old=$(ratio "${mean[new]}" "${mean[old]}")
retry_new=$(ratio "${mean[retry]}" "${mean[new]}")
echo
echo "new / old   = $new_old (target <= 1.03: $(verdict "$new_old" 1.03))"
echo "retry / new = $retry_new (target <= 1.10: $(verdict "$retry_new" 1.10))"
echo "callgrind files in $out; build ${build_seconds} s, measurement ${measure_seconds} s, all $((SECONDS - started)) s"
