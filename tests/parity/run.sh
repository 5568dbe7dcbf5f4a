#!/usr/bin/env bash
# The parity suite: the same scenarios through the C, Python and Node faces against one echo
# server, each face printing a JSON line per scenario; every face must give the class in
# expected.txt for every scenario (and so the same class as the others). Runs after the faces'
# own tests have built them: the C library in target/debug, the Python package in
# target/python-venv, the Node addon in bindings-node.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out="$root/target/parity"
mkdir -p "$out"

cargo build --quiet --locked -p grpcpool-ffi --lib
cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
"$root/target/debug/grpcpool-echo-server" --port 0 >"$out/server.out" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q '^LISTENING ' "$out/server.out" && break
  sleep 0.05
done
port=$(sed -n 's/^LISTENING //p' "$out/server.out")
target="http://127.0.0.1:$port"
# Port 1 on loopback: nothing listens there, so connecting is refused at once.
down="http://127.0.0.1:1"

gcc -std=c11 -Wall -Wextra -Werror -g -Iinclude tests/parity/c/parity.c -o "$out/parity-c" \
  -L"$root/target/debug" -lgrpcpool -Wl,-rpath,"$root/target/debug" -lpthread
faces=(c python node)
timeout 120 "$out/parity-c" "$target" "$down" >"$out/c.jsonl"
timeout 120 "$root/target/python-venv/bin/python" tests/parity/python/parity.py "$target" "$down" >"$out/python.jsonl"
timeout 120 node tests/parity/node/parity.js "$target" "$down" >"$out/node.jsonl"

# A runtime that cannot start its threads: each face's program caps its threads and drops root
# itself (RLIMIT_NPROC does not bind root), so this part needs root, as CI has. A hang is the
# failure this guards against: each program gets 10 s before it counts as hung.
refused() {
  local face=$1; shift
  local rc=0
  timeout 10 "$@" >"$out/$face-refused.jsonl" 2>"$out/$face-refused.err" || rc=$?
  if [ "$rc" = 124 ]; then
    echo '{"scenario": "runtime_refused", "class": "hung", "via": "", "detail": "no answer in 10 s"}'
  elif [ "$rc" != 0 ] || [ ! -s "$out/$face-refused.jsonl" ]; then
    echo "{\"scenario\": \"runtime_refused\", \"class\": \"failed\", \"via\": \"\", \"detail\": \"exit $rc\"}"
    cat "$out/$face-refused.err" >&2
  else
    cat "$out/$face-refused.jsonl"
  fi >>"$out/$face.jsonl"
}
refused_expected=()
if [ "$(id -u)" = 0 ]; then
  gcc -std=c11 -Wall -Wextra -Werror -g -Iinclude tests/parity/c/refused.c -o "$out/refused-c" \
    -L"$root/target/debug" -lgrpcpool -Wl,-rpath,"$root/target/debug"
  refused c "$out/refused-c" "$target"
  refused python "$root/target/python-venv/bin/python" tests/parity/python/refused.py "$target"
  refused node node tests/parity/node/refused.js "$target"
  refused_expected=(runtime_refused=runtime_error)
else
  echo "parity: runtime_refused skipped (it drops root to cap an unprivileged user's threads)"
fi

verdict=0
python3 tests/parity/compare.py "$out" tests/parity/expected.txt "${faces[@]}" \
  --extra "${refused_expected[@]}" || verdict=1

# Discovery: xds:/// targets from a real control plane and endpoints pushed under load.
bash tests/parity/discovery.sh || verdict=1
exit "$verdict"
