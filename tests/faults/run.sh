#!/usr/bin/env bash
# The fault suite: servers killed with SIGKILL and restarted, GOAWAY storms, a blackhole inside
# a network namespace, a one-stream server under 32 callers, deadlines against a slow server,
# dead targets beside a healthy one, and keepalive against grpc-go's and a strict grpcio's ping
# policy. First through the Rust core (core/tests/{resilience,keepalive,faults}.rs, against the
# in-process tonic server), then through the Python face against real servers in processes of
# their own (the project's echo server, grpcio servers with the server options a scenario
# needs, the grpc-go interop server). Prints each scenario's figures and one
# "fault suite: N passed, N failed" line; fails on any failure.
#
# Runs after bindings-python/test.sh has made target/python-venv. The blackhole scenario makes
# a network namespace and so needs root, ip and iptables (.ci/run installs iproute2 and
# iptables); without them it is skipped and counted as such.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out="$root/target/faults"
rm -rf "$out"
mkdir -p "$out"
python="$root/target/python-venv/bin/python"
if [ ! -x "$python" ]; then
  echo "the fault suite's Python face needs the venv: run bindings-python/test.sh first" >&2
  exit 1
fi

cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
export GRPCPOOL_ECHO_SERVER="$root/target/debug/grpcpool-echo-server"
GRPCPOOL_GO_INTEROP_SERVER="$(bash scripts/go-interop-server.sh)"
export GRPCPOOL_GO_INTEROP_SERVER

echo "== fault suite through the Rust core"
core_rc=0
cargo test --quiet --locked -p grpcpool-core --test resilience --test keepalive --test faults \
  -- --nocapture --test-threads=1 2>&1 | tee "$out/core.log" | grep -E '^(FIGURES|test |test result)|panicked' \
  || core_rc=$?
[ "${PIPESTATUS[0]}" = 0 ] || core_rc=1

echo "== fault suite through the Python face"
# The idle-keepalive scenario spends a minute waiting: it runs beside the others.
pytest=("$python" -m pytest -q -s -p no:cacheprovider --rootdir tests/faults)
"${pytest[@]}" --junitxml="$out/idle.xml" tests/faults/test_keepalive_idle.py >"$out/idle.log" 2>&1 &
idle=$!
trap 'kill "$idle" 2>/dev/null || true' EXIT
python_rc=0
"${pytest[@]}" --junitxml="$out/python.xml" --ignore=tests/faults/test_keepalive_idle.py tests/faults \
  2>&1 | tee "$out/python.log" | grep -E '^FIGURES|passed|failed|error|Error' || true
[ "${PIPESTATUS[0]}" = 0 ] || python_rc=1
idle_rc=0
wait "$idle" || idle_rc=$?
grep -E '^FIGURES|passed|failed|Error' "$out/idle.log" || true
trap - EXIT

# One count over both parts: cargo's "test result" lines and pytest's JUnit files.
"$python" - "$out" <<'PY'
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

out = Path(sys.argv[1])
passed = failed = skipped = 0
for line in (out / "core.log").read_text().splitlines():
    found = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if found:
        passed += int(found[1]); failed += int(found[2]); skipped += int(found[3])
for name in ("python.xml", "idle.xml"):
    path = out / name
    if not path.exists():
        failed += 1
        continue
    for suite in ElementTree.parse(path).getroot().iter("testsuite"):
        tests, errors, failures, skips = (int(suite.get(key, 0)) for key in ("tests", "errors", "failures", "skipped"))
        passed += tests - errors - failures - skips
        failed += errors + failures
        skipped += skips
print(f"fault suite: {passed} passed, {failed} failed, {skipped} skipped")
PY

if [ "$core_rc" != 0 ] || [ "$python_rc" != 0 ] || [ "$idle_rc" != 0 ]; then
  echo "fault suite failed: see $out/*.log" >&2
  exit 1
fi
