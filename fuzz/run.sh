#!/usr/bin/env bash
# Fuzzes grpcpool for a bounded time (issue 12): builds every cargo-fuzz target under
# AddressSanitizer (LeakSanitizer on), replays the recorded crash inputs in fuzz/regressions/,
# then runs each target from a scratch copy of its checked-in corpus (fuzz/corpus/<target>/,
# never written to), one line per target and a summary. Exits non-zero on any crash, with the
# crash input's path printed, and on a regression that fails without being a known open bug.
#
#   fuzz/run.sh                      build, replay, fuzz every target (~100 s of fuzzing)
#   FUZZ_SECONDS=60 fuzz/run.sh      seconds per target instead of the defaults below
#   FUZZ_TARGETS="metadata" fuzz/run.sh
#   FUZZ_UPDATE_CORPUS=1 fuzz/run.sh merge what the run found into fuzz/corpus/ (cargo fuzz cmin,
#                                    set cover)
#
# Works on a stable toolchain: cargo-fuzz passes -Z flags (-Zsanitizer=address), which
# RUSTC_BOOTSTRAP=1 lets stable rustc take; the sanitizer runtimes ship with rust-std. When
# `cargo fuzz` is missing, cargo-fuzz is installed (pinned, --locked) into fuzz/target/tools/,
# inside the fuzz workspace's own ignored target directory, not into ~/.cargo.
# CARGO_BUILD_JOBS limits the build's parallelism (unset: one job per core).
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$FUZZ_DIR"

CARGO_FUZZ_VERSION=0.13.2
TRIPLE=x86_64-unknown-linux-gnu
ALL_TARGETS="target_parse metadata settings grpc_timeout trailers ffi_sequence"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
WORK="$FUZZ_DIR/work"
ARTIFACTS="$FUZZ_DIR/artifacts"

# Seconds per target: the parsers are cheap per input and saturate fast; the two that drive a
# server get more.
seconds_for() {
    if [[ -n "${FUZZ_SECONDS:-}" ]]; then
        echo "$FUZZ_SECONDS"
        return
    fi
    case "$1" in
        trailers) echo 20 ;;
        ffi_sequence) echo 40 ;;
        *) echo 10 ;;
    esac
}

# libFuzzer flags per target: metadata's inputs stay short, which keeps its corpus small.
flags_for() {
    case "$1" in
        metadata) echo "-max_len=200" ;;
        *) echo "" ;;
    esac
}

export RUSTC_BOOTSTRAP=1
# ASan's one-definition-rule check misfires on Rust globals; `cargo fuzz run` turns it off too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

if ! cargo fuzz --version >/dev/null 2>&1; then
    export PATH="$FUZZ_DIR/target/tools/bin:$PATH"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into fuzz/target/tools"
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" \
            --root "$FUZZ_DIR/target/tools" --quiet
    fi
fi

# Open bugs the targets tolerate while fuzzing (fuzz/regressions/KNOWN); see
# grpcpool_fuzz::tolerated.
KNOWN_FILE="$FUZZ_DIR/regressions/KNOWN"
known_names() {
    [[ -f "$KNOWN_FILE" ]] || return 0
    awk '!/^#/ && NF { print $1 }' "$KNOWN_FILE" | sort -u | paste -sd, -
}
known_entry_for() {
    [[ -f "$KNOWN_FILE" ]] || return 0
    awk -v input="$1" '!/^#/ && $2 == input { print $1 }' "$KNOWN_FILE"
}

started=$(date +%s)
mkdir -p "$WORK"
echo "fuzz: building ${TARGETS// /, } (release, ASan, debug assertions)"
build_started=$(date +%s)
if [[ "$TARGETS" == "$ALL_TARGETS" ]]; then
    cargo fuzz build --target "$TRIPLE"
else
    for target in $TARGETS; do
        cargo fuzz build --target "$TRIPLE" "$target"
    done
fi
build_seconds=$(($(date +%s) - build_started))
echo "fuzz: built in ${build_seconds} s"

failed=0

# Every recorded crash input, replayed with no bug tolerated: an input of a known open bug
# must still fail, any other must pass. Each runs up to REPLAYS times in fresh processes
# (libFuzzer runs a file argument once), so a bug that shows only sometimes (a race with a
# peer) still shows.
REPLAYS=${FUZZ_REPLAYS:-10}
replay() {
    local binary=$1 input=$2 attempt
    for ((attempt = 1; attempt <= REPLAYS; attempt++)); do
        if ! GRPCPOOL_FUZZ_KNOWN= "$binary" "$input" >"$WORK/replay.log" 2>&1; then
            return 1
        fi
    done
    return 0
}
replayed=0
still_open=0
for target in $TARGETS; do
    [[ -d "regressions/$target" ]] || continue
    binary="target/$TRIPLE/release/$target"
    for input in "regressions/$target"/*; do
        [[ -f "$input" ]] || continue
        replayed=$((replayed + 1))
        name=$(known_entry_for "$target/$(basename "$input")")
        if replay "$binary" "$input"; then
            if [[ -n "$name" ]]; then
                echo "regression $input: passes now ($REPLAYS runs); its bug ($name) looks fixed: drop its line from fuzz/regressions/KNOWN and its tolerated(\"$name\") check"
                failed=1
            fi
        elif [[ -n "$name" ]]; then
            still_open=$((still_open + 1))
            echo "regression $input: still fails (known open bug $name)"
        else
            echo "regression $input: FAILS"
            tail -n 30 "$WORK/replay.log"
            failed=1
        fi
    done
done
rm -f "$WORK/replay.log"

export GRPCPOOL_FUZZ_KNOWN
GRPCPOOL_FUZZ_KNOWN=$(known_names)
total_runs=0
total_seconds=0
crashes=0
for target in $TARGETS; do
    seconds=$(seconds_for "$target")
    corpus="$WORK/corpus/$target"
    rm -rf "$corpus"
    mkdir -p "$corpus" "$ARTIFACTS/$target"
    if [[ -d "corpus/$target" ]]; then
        cp -R "corpus/$target/." "$corpus/"
    fi
    log="$WORK/$target.log"
    dictionary=()
    if [[ -f "dictionaries/$target.dict" ]]; then
        dictionary=(-dict="dictionaries/$target.dict")
    fi
    read -r -a extra <<<"$(flags_for "$target")"
    status=0
    "target/$TRIPLE/release/$target" -max_total_time="$seconds" -timeout=20 \
        -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$target/" \
        "${dictionary[@]}" "${extra[@]}" "$corpus" >"$log" 2>&1 || status=$?
    runs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log" | tail -n 1)
    runs=${runs:-0}
    total_runs=$((total_runs + runs))
    total_seconds=$((total_seconds + seconds))
    if [[ $status -eq 0 ]]; then
        echo "fuzz $target: $runs executions in $seconds s, 0 crashes"
    else
        crashes=$((crashes + 1))
        failed=1
        input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "fuzz $target: $runs executions in $seconds s, 1 crash (exit $status): ${input:-see $log}"
        grep -E -m 5 -A 4 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SIGPIPE raised' "$log" || tail -n 30 "$log"
        echo "  replay: $FUZZ_DIR/target/$TRIPLE/release/$target ${input:-<input>}"
        echo "  record it: copy the input to fuzz/regressions/$target/<what-it-is>"
    fi
    if [[ "${FUZZ_UPDATE_CORPUS:-0}" == 1 && $status -eq 0 ]]; then
        mkdir -p "corpus/$target"
        cp -n "$corpus"/* "corpus/$target/" 2>/dev/null || true
        # Set cover keeps fewer inputs than cmin's default -merge=1, for the same features.
        cargo fuzz cmin --target "$TRIPLE" "$target" "corpus/$target" -- -set_cover_merge=1 \
            "${extra[@]}" >"$WORK/$target.cmin.log" 2>&1
        echo "fuzz $target: corpus now $(find "corpus/$target" -type f | wc -l) inputs, $(cat "corpus/$target"/* | wc -c) bytes"
    fi
done

elapsed=$(($(date +%s) - started))
targets_run=$(wc -w <<<"$TARGETS")
echo "fuzz summary: $targets_run targets, $total_runs executions in $total_seconds s of fuzzing, $crashes crashes; $replayed regressions replayed ($still_open known open bugs); build ${build_seconds} s, total ${elapsed} s"
exit "$failed"
