# Sourced by bench's scripts (call_paths.sh, policy_cost.sh, alloc_count.sh), not run.
#
#   start_echo_server NAME OUT COMMAND...
#
# Starts COMMAND (an echo server, with any pinning prefix and arguments) in the background with
# --port 0, its output in OUT/server.out and OUT/server.err, and waits up to 10 s for its
# LISTENING line. Sets `server` (its pid) and `target` (http://127.0.0.1:PORT); on failure it
# says so as NAME, shows the server's errors and exits. The caller kills it (a trap on EXIT).
start_echo_server() {
  local name=$1 out=$2
  shift 2
  "$@" --port 0 >"$out/server.out" 2>"$out/server.err" &
  server=$!
  for _ in $(seq 100); do
    grep -q '^LISTENING ' "$out/server.out" && break
    sleep 0.1
  done
  local port
  port=$(awk '/^LISTENING /{print $2; exit}' "$out/server.out")
  [[ -n $port ]] || { echo "$name: the echo server did not start" >&2; cat "$out/server.err" >&2; exit 1; }
  target=http://127.0.0.1:$port
}
