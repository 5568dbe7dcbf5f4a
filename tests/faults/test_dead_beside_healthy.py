"""Dead targets beside a healthy one in one pool: one refuses connections, one never answers
(a listener whose accept queue is full drops every SYN). Calls to the healthy target see no
error; calls to the dead ones fail without overrunning their deadline."""

from __future__ import annotations

import socket
import threading
import time
from typing import Dict, Iterator, List

import pytest

import grpcpool

from conftest import ECHO_UNARY, Outcome, Server, bounded_threads, echo_server_command, report, tally, target_stats, timed_unary

SECONDS = 3.0
TIMEOUT = 1.0
REFUSED = "http://127.0.0.1:1"


@pytest.fixture
def blackholed() -> Iterator[str]:
    """A loopback target that never answers: the listener's accept queue (backlog 0 holds
    one) is filled and never drained, so the kernel drops the SYNs of every later connect."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    for filler in fillers:
        filler.close()
    listener.close()


def test_dead_targets_do_not_disturb_a_healthy_one(servers: List[Server], blackholed: str) -> None:
    server = Server(echo_server_command())
    servers.append(server)
    healthy = server.target
    outcomes: Dict[str, List[Outcome]] = {healthy: [], REFUSED: [], blackholed: []}
    lock = threading.Lock()
    # Threads 0-5 call the healthy target, 6-7 the refusing one, 8-9 the silent one.
    plan = [healthy] * 6 + [REFUSED] * 2 + [blackholed] * 2
    with grpcpool.Pool() as pool:
        pool.unary(healthy, ECHO_UNARY, b"warm", timeout=5)
        until = time.monotonic() + SECONDS

        def load(index: int) -> None:
            target = plan[index]
            for _ in range(100_000):
                if time.monotonic() >= until:
                    return
                outcome = timed_unary(pool, target, ECHO_UNARY, b"x" * 64, TIMEOUT)
                with lock:
                    outcomes[target].append(outcome)
                if outcome.code != "OK":
                    time.sleep(0.01)

        bounded_threads(len(plan), load)
        stats = {target: target_stats(pool, target) for target in outcomes}

    slowest = {target: max(o.elapsed for o in found) for target, found in outcomes.items()}
    report(
        "dead_beside_healthy",
        healthy=tally(outcomes[healthy]),
        refused=tally(outcomes[REFUSED]),
        blackholed=tally(outcomes[blackholed]),
        healthy_slowest_ms=round(slowest[healthy] * 1000, 1),
        refused_slowest_ms=round(slowest[REFUSED] * 1000, 1),
        blackholed_slowest_ms=round(slowest[blackholed] * 1000, 1),
    )
    assert set(tally(outcomes[healthy])) == {"OK"}, tally(outcomes[healthy])
    assert set(tally(outcomes[REFUSED])) == {"UNAVAILABLE"}
    assert slowest[REFUSED] < TIMEOUT / 2, "calls to a refusing target waited"
    assert set(tally(outcomes[blackholed])) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert all(slowest[target] < TIMEOUT + 0.1 for target in outcomes), "a call overran its deadline"
    assert all(entry["leases_out"] == 0 for entry in stats.values())
