"""Fixtures of the fault suite: real servers in processes of their own, a network namespace
reached over a veth pair, and a helper that times calls through the Python face.

Paths come from the environment that tests/faults/run.sh sets: GRPCPOOL_ECHO_SERVER (the
project's server), GRPCPOOL_GO_INTEROP_SERVER (grpc-go's interop server).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

import grpcpool

HERE = Path(__file__).resolve().parent
UNARY = "/faults.Echo/Unary"
BIDI = "/faults.Echo/Bidi"
SEEN = "/faults.Echo/Seen"
ECHO_UNARY = "/grpcpool.test.Echo/Unary"


def report(scenario: str, **figures: object) -> None:
    """One line of figures per scenario, kept in the run's output (pytest -s) for the notes."""
    text = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\nFIGURES {scenario}: {text}", flush=True)


class Server:
    """A server process that printed ``LISTENING <port>``; killed when the test ends."""

    def __init__(self, command: Sequence[str], host: str = "127.0.0.1") -> None:
        self.command = list(command)
        self.host = host
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.port = self._wait_listening()

    def _wait_listening(self) -> int:
        assert self.process.stdout is not None
        # A bounded wait: a server that never says LISTENING fails the test, not the run.
        timer = threading.Timer(20.0, self.process.kill)
        timer.start()
        try:
            for line in self.process.stdout:
                if line.startswith("LISTENING "):
                    return int(line.split()[1])
        finally:
            timer.cancel()
        raise RuntimeError(f"{self.command[0]} exited before listening: {self.process.wait()}")

    @property
    def target(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no GOAWAY, no FIN from the server's side before the kernel's."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def servers() -> Iterator[List[Server]]:
    """Servers a test starts (append to the list); all killed at its end."""
    started: List[Server] = []
    yield started
    for server in started:
        server.kill()


def grpcio_server_command(*options: str, host: str = "127.0.0.1", port: int = 0) -> List[str]:
    """The command line of tests/faults/grpcio_server.py with grpcio channel args."""
    command = [sys.executable, str(HERE / "grpcio_server.py"), "--host", host, "--port", str(port)]
    for option in options:
        command += ["--option", option]
    return command


def echo_server_command(port: int = 0) -> List[str]:
    """The project's echo server (testserver's standalone binary)."""
    binary = os.environ.get("GRPCPOOL_ECHO_SERVER")
    if not binary:
        pytest.fail("GRPCPOOL_ECHO_SERVER is not set: run tests/faults/run.sh")
    return [binary, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Outcome:
    """One call: when it started (monotonic), how long it took, its status name."""

    started: float
    elapsed: float
    code: str
    details: str = ""


def timed_unary(
    pool: grpcpool.Pool,
    target: str,
    method: str,
    body: bytes,
    timeout: float,
    metadata: Optional[Sequence[Tuple[str, str]]] = None,
) -> Outcome:
    started = time.monotonic()
    try:
        pool.unary(target, method, body, timeout=timeout, metadata=metadata)
        return Outcome(started, time.monotonic() - started, "OK")
    except grpcpool.RpcError as error:
        return Outcome(started, time.monotonic() - started, error.code().name, error.details())


def bounded_threads(count: int, work: Callable[[int], None]) -> None:
    """Runs ``work(i)`` on ``count`` threads and joins them (each bounds its own loop)."""
    threads = [threading.Thread(target=work, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a load thread overran its bound"


def tally(outcomes: Sequence[Outcome]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.code] = counts.get(outcome.code, 0) + 1
    return dict(sorted(counts.items()))


def target_stats(pool: grpcpool.Pool, target: str) -> Dict[str, Any]:
    for entry in pool.stats()["targets"]:
        if entry["target"] == target:
            return dict(entry)
    raise AssertionError(f"no stats for {target}")


@dataclass
class Namespace:
    """A network namespace reached from here over a veth pair: ``address`` is its side."""

    name: str
    address: str
    host_address: str
    blocked: bool = field(default=False)

    def run(self, *command: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *command], check=True)

    def command(self, command: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def blackhole(self) -> None:
        """Drops every packet that reaches the namespace: no RST, no FIN, no answer."""
        self.run("iptables", "-I", "INPUT", "-j", "DROP")
        self.blocked = True

    def lift(self) -> None:
        self.run("iptables", "-D", "INPUT", "-j", "DROP")
        self.blocked = False


def _can_make_namespaces() -> Optional[str]:
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs {tool} (.ci/run installs it)"
    return None


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A fresh namespace ``gpf<pid>`` with 10.231.<n>.2 inside and .1 here; removed after."""
    reason = _can_make_namespaces()
    if reason is not None:
        pytest.skip(reason)
    name = f"gpf{os.getpid() % 100000}"
    subnet = 10 + os.getpid() % 200
    host_address, inside = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    host_link, inside_link = f"{name}h", f"{name}n"

    def sh(*command: str) -> None:
        subprocess.run(command, check=True)

    subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "del", host_link], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", host_link, "type", "veth", "peer", "name", inside_link)
        sh("ip", "link", "set", inside_link, "netns", name)
        sh("ip", "addr", "add", f"{host_address}/30", "dev", host_link)
        sh("ip", "link", "set", host_link, "up")
        sh("ip", "netns", "exec", name, "ip", "addr", "add", f"{inside}/30", "dev", inside_link)
        sh("ip", "netns", "exec", name, "ip", "link", "set", inside_link, "up")
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield Namespace(name, inside, host_address)
    finally:
        subprocess.run(["ip", "link", "del", host_link], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
