"""Keepalive on the defaults against grpc-go's default enforcement (MinTime 5 minutes,
PermitWithoutStream false): a connection left idle for a minute is neither pinged into a
GOAWAY too_many_pings nor replaced. run.sh runs this file beside the rest of the suite, as it
spends its minute waiting."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Iterator

import pytest

import grpcpool

from conftest import free_port, report, target_stats

EMPTY_CALL = "/grpc.testing.TestService/EmptyCall"
IDLE = 60.0


@pytest.fixture
def go_server() -> Iterator[str]:
    binary = os.environ.get("GRPCPOOL_GO_INTEROP_SERVER")
    if not binary:
        pytest.fail("GRPCPOOL_GO_INTEROP_SERVER is not set: run tests/faults/run.sh")
    port = free_port()
    process = subprocess.Popen([binary, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_minute_idle_on_the_defaults_draws_no_goaway_from_grpc_go(go_server: str) -> None:
    with grpcpool.Pool() as pool:
        pool.unary(go_server, EMPTY_CALL, b"", timeout=5)
        time.sleep(IDLE)
        pool.unary(go_server, EMPTY_CALL, b"", timeout=5)
        stats = target_stats(pool, go_server)
    report(
        "keepalive_idle_grpc_go",
        idle_s=IDLE,
        goaways=stats["goaways_received"],
        connects=stats["connects"],
        keepalive_time_ms=stats["keepalive_time_ms"],
        calls_succeeded=stats["calls_succeeded"],
    )
    assert stats["goaways_received"] == 0
    # The same connection carried both calls: nothing closed it in the idle minute.
    assert stats["connects"] == 1 and stats["reconnects"] == 0
    assert stats["calls_succeeded"] == 2
