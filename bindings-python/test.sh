#!/usr/bin/env bash
# Tests the Python package: makes a venv under target/, installs the test tools and the package
# (`pip install ./bindings-python` builds the native module with maturin), type-checks the
# package with mypy --strict and the native module's stubs with mypy's stubtest, runs the pytest
# suite against a real grpcio server, then the example against grpcpool's echo server (the
# parity scenarios run in tests/parity/run.sh, beside the other faces).
# Needs only Rust and python3 (and the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
# Both may be moved (a build of one's own beside others'); the defaults are what CI uses.
venv="${PYTHON_VENV:-target/python-venv}"
target_dir="${CARGO_TARGET_DIR:-target}"
python="$venv/bin/python"

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # Debian and Ubuntu ship venv support separately.
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv
  else
    echo "python3 lacks venv support: install python3-venv" >&2
    exit 1
  fi
fi

if [ ! -x "$python" ]; then
  echo "== making a venv in $venv"
  python3 -m venv "$venv"
fi
# Absolute, as some steps run in bindings-python/.
python="$(cd "$venv" && pwd)/bin/python"

echo "== installing test tools"
"$python" -m pip install -q --upgrade "pip>=23"
"$python" -m pip install -q \
  "maturin>=1.9.4,<2" "grpcio>=1.60" "grpcio-tools>=1.60" "grpcio-health-checking>=1.60" \
  "prometheus_client>=0.17" "protobuf>=4.25" "pytest>=7" "mypy>=1.8"

echo "== pip install ./bindings-python (builds the native module)"
"$python" -m pip install -q --force-reinstall --no-deps ./bindings-python

echo "== mypy --strict"
(cd bindings-python && "$python" -m mypy --strict python/grpcpool tests/typing_usage.py)

echo "== stubtest: _native.pyi against the built module"
# From outside the source tree, so the installed module and its stub are what is compared.
"$python" -m mypy.stubtest grpcpool._native

echo "== pytest"
# Run from outside the source tree so the installed package, not python/, is imported.
"$python" -m pytest -q -p no:cacheprovider bindings-python/tests

echo "== examples/python/echo.py against grpcpool's echo server"
cargo build --quiet --locked -p grpcpool-testserver --bin grpcpool-echo-server
server_log="$(mktemp)"
"$target_dir/debug/grpcpool-echo-server" --port 0 >"$server_log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; rm -f "$server_log"' EXIT
for _ in $(seq 1 100); do
  grep -q LISTENING "$server_log" && break
  sleep 0.1
done
port="$(awk '/LISTENING/ {print $2}' "$server_log")"
"$python" examples/python/echo.py "http://127.0.0.1:$port" >/dev/null
echo "example ran"
