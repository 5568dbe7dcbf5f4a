#!/usr/bin/env bash
# The parity suite's discovery scenarios: the same xds:///svc calls through the C, Python and
# Node faces and grpc-go's own xDS client (the reference), against four echo servers on
# 127.0.0.2-5 and the go-control-plane server of tests/xds; then endpoints pushed with
# set_endpoints under load through each face. Every face must give the class in
# expected-discovery.txt. Run by tests/parity/run.sh after the faces are built.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out="$root/target/parity/discovery"
mkdir -p "$out"

cargo build --quiet --locked -p grpcpool-ffi --lib
ln -sf libgrpcpool.so "$root/target/debug/libgrpcpool.so.0" # its soname, as tests/c/run.sh makes it
cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
# -mod=readonly: tests/xds/go.mod and go.sum pin every module.
(cd tests/xds && go build -mod=readonly -o "$out/xds-control-plane" . &&
  go build -mod=readonly -o "$out/xds-client" ./client)

pids=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Prints the port of a process that writes `<word> <port>` on its stdout file, once it has.
port_of() { # file word
  for _ in $(seq 1 200); do
    grep -q "^$2 " "$1" && break
    sleep 0.05
  done
  sed -n "s/^$2 //p" "$1" | head -1
}

backends=()
for octet in 2 3 4 5; do
  "$root/target/debug/grpcpool-echo-server" --ip "127.0.0.$octet" --port 0 >"$out/server-$octet.out" 2>&1 &
  pids+=($!)
done
for octet in 2 3 4 5; do
  port=$(port_of "$out/server-$octet.out" LISTENING)
  [ -n "$port" ] || { echo "discovery: the echo server on 127.0.0.$octet did not start" >&2; exit 1; }
  backends+=("127.0.0.$octet:$port")
done
a=${backends[0]} b=${backends[1]} c=${backends[2]}

# The control plane reads snapshots on stdin until it closes: a FIFO held open on fd 3.
rm -f "$out/plane.in"
mkfifo "$out/plane.in"
"$out/xds-control-plane" <"$out/plane.in" >"$out/plane.out" 2>&1 &
pids+=($!)
exec 3>"$out/plane.in"
plane_port=$(port_of "$out/plane.out" listening)
[ -n "$plane_port" ] || { echo "discovery: the control plane did not start" >&2; cat "$out/plane.out" >&2; exit 1; }
endpoint() { echo "{\"address\": \"${1%:*}\", \"port\": ${1##*:}}"; }
echo "{\"version\": \"1\", \"listener\": \"svc\",
  \"routes\": [{\"prefix\": \"\", \"clusters\": [{\"name\": \"one\", \"weight\": 1}, {\"name\": \"three\", \"weight\": 3}]}],
  \"clusters\": [{\"name\": \"one\", \"endpoints\": [$(endpoint "$a")]},
                 {\"name\": \"three\", \"endpoints\": [$(endpoint "$b"), $(endpoint "$c")]}]}" | tr -d '\n' >&3
echo >&3
for _ in $(seq 1 200); do
  grep -q '^applied 1$' "$out/plane.out" && break
  sleep 0.05
done
grep -q '^applied 1$' "$out/plane.out" || { echo "discovery: the snapshot was refused" >&2; cat "$out/plane.out" >&2; exit 1; }

# The gRPC bootstrap (A27) every face reads from GRPC_XDS_BOOTSTRAP, grpc-go's client too.
cat >"$out/bootstrap.json" <<JSON
{"xds_servers": [{"server_uri": "127.0.0.1:$plane_port", "channel_creds": [{"type": "insecure"}],
  "server_features": ["xds_v3"]}],
 "node": {"id": "grpcpool-test", "cluster": "parity"}}
JSON
export GRPC_XDS_BOOTSTRAP="$out/bootstrap.json"

gcc -std=c11 -Wall -Wextra -Werror -g -Iinclude tests/parity/c/discovery.c -o "$out/discovery-c" \
  -L"$root/target/debug" -lgrpcpool -Wl,-rpath,"$root/target/debug" -lpthread
faces=(c python node go)
timeout 120 "$out/discovery-c" "${backends[@]}" >"$out/c.jsonl"
timeout 120 "$root/target/python-venv/bin/python" tests/parity/python/discovery.py "${backends[@]}" >"$out/python.jsonl"
timeout 120 node tests/parity/node/discovery.js "${backends[@]}" >"$out/node.jsonl"
timeout 120 "$out/xds-client" "${backends[@]}" >"$out/go.jsonl"

# One rule for every face's counts of the split: no failed call, every call on A, B or C (the
# EDS endpoints), each of them reached, and A's share 25% within 7 points.
python3 - "$out" "${faces[@]}" <<'PY'
import json, sys
out, faces = sys.argv[1], sys.argv[2:]
for face in faces:
    path = f"{out}/{face}.jsonl"
    entries = [json.loads(line) for line in open(path)]
    for entry in entries:
        if entry["scenario"] != "xds_weighted_split" or entry["class"] != "counted":
            continue
        counts = dict(word.split("=") for word in entry["detail"].split() if "=" in word)
        a, b, c, d, other, failed = (int(counts.get(key, 0)) for key in ("A", "B", "C", "D", "other", "failed"))
        calls = a + b + c + d + other + failed
        if failed:
            entry["class"] = "failed_calls"
        elif d or other:
            entry["class"] = "outside_eds"
        elif not (a and b and c):
            entry["class"] = "endpoint_unused"
        elif not 18 * calls <= a * 100 <= 32 * calls:
            entry["class"] = "wrong_split"
        else:
            entry["class"] = "split_1_3"
    with open(path, "w") as rewritten:
        rewritten.writelines(json.dumps(entry) + "\n" for entry in entries)
PY

verdict=0
python3 tests/parity/compare.py --details "$out" tests/parity/expected-discovery.txt "${faces[@]}" || verdict=1
# Every face's pool (and grpc-go) ACKed what it took; none NACKed the snapshot.
if grep -q '^nack ' "$out/plane.out"; then
  echo "discovery: a client NACKed the snapshot:" >&2
  grep '^nack ' "$out/plane.out" >&2
  verdict=1
fi
echo "discovery: the control plane saw $(grep -c '^ack ' "$out/plane.out") ACKs, $(grep -c '^nack ' "$out/plane.out" || true) NACKs"
exit "$verdict"
