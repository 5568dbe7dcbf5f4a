#!/usr/bin/env bash
# Tests the Python package: makes a venv under target/ with the build and test tools, builds the
# abi3 wheel with `maturin build --release` (auditwheel must call it manylinux), installs it
# into a fresh venv with no cargo on PATH and, there, type-checks the package with mypy
# --strict and the native module's stubs with mypy's stubtest, runs the pytest suite against
# real grpcio servers, then the examples against grpcpool's echo server and a grpcio server
# (the parity scenarios run in tests/parity/run.sh, beside the other faces).
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
  "maturin>=1.9.4,<2" "auditwheel>=6" "grpcio>=1.60" "grpcio-tools>=1.60" "grpcio-health-checking>=1.60" \
  "prometheus_client>=0.17" "protobuf>=4.25" "pytest>=7" "mypy>=1.8"

echo "== maturin build --release: the abi3 wheel, checked by auditwheel"
wheels="$target_dir/wheels"
rm -f "$wheels"/grpcpool-*.whl
"$python" -m maturin build --quiet --release --locked -m bindings-python/Cargo.toml --out "$wheels"
wheel="$(ls "$wheels"/grpcpool-*-abi3-*.whl)"
"$python" -m auditwheel show "$wheel" | tee "$target_dir/auditwheel.txt"
grep -q 'following platform tag: "manylinux_' "$target_dir/auditwheel.txt"
# The parity, fault and interop suites use this venv's grpcpool: the same wheel.
"$python" -m pip install -q --force-reinstall --no-deps "$wheel"

# The rest runs with no Rust on PATH, in a venv made for the wheel: installing it needs none.
no_rust_path=""
IFS=: read -ra path_entries <<<"$PATH"
for entry in "${path_entries[@]}"; do
  if [ -x "$entry/cargo" ] || [ -x "$entry/rustc" ]; then
    continue
  fi
  no_rust_path="${no_rust_path:+$no_rust_path:}$entry"
done
if PATH="$no_rust_path" command -v cargo >/dev/null; then
  echo "cargo is still on the PATH meant to have none" >&2
  exit 1
fi
wheel_venv="$venv-wheel"
echo "== a fresh venv ($wheel_venv) with the wheel and the test tools, no cargo on PATH"
rm -rf "$wheel_venv"
PATH="$no_rust_path" python3 -m venv "$wheel_venv"
python="$(cd "$wheel_venv" && pwd)/bin/python"
PATH="$no_rust_path" "$python" -m pip install -q --upgrade "pip>=23"
PATH="$no_rust_path" "$python" -m pip install -q \
  "grpcio>=1.60" "grpcio-tools>=1.60" "grpcio-health-checking>=1.60" \
  "prometheus_client>=0.17" "protobuf>=4.25" "pytest>=7" "mypy>=1.8"
PATH="$no_rust_path" "$python" -m pip install -q --no-deps "$wheel"

echo "== mypy --strict"
(cd bindings-python && PATH="$no_rust_path" "$python" -m mypy --strict python/grpcpool tests/typing_usage.py)

echo "== stubtest: _native.pyi against the built module"
# From outside the source tree, so the installed module and its stub are what is compared.
PATH="$no_rust_path" "$python" -m mypy.stubtest grpcpool._native

echo "== pytest (the installed wheel, no cargo on PATH)"
# Run from outside the source tree so the installed package, not python/, is imported.
PATH="$no_rust_path" "$python" -m pytest -q -p no:cacheprovider bindings-python/tests

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
PATH="$no_rust_path" "$python" examples/python/echo.py "http://127.0.0.1:$port" >/dev/null
echo "== examples/python/aio_stub.py: a generated grpc.aio stub over grpcpool.aio.Channel"
PATH="$no_rust_path" "$python" examples/python/aio_stub.py >/dev/null
echo "examples ran"
