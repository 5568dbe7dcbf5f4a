"""Deadlines against a slow server: unary calls and streams the server does not answer in
time end with DEADLINE_EXCEEDED within 50 ms of their deadline, and leave no lease or stream
slot behind."""

from __future__ import annotations

import threading
import time
from typing import List

import grpcpool

from conftest import BIDI, UNARY, Outcome, Server, bounded_threads, grpcio_server_command, report, tally, target_stats, timed_unary

TIMEOUT = 0.3
CALLS = 16
STREAMS = 8
LATE_BOUND = 0.05


def test_calls_to_a_slow_server_end_at_their_deadline(servers: List[Server]) -> None:
    server = Server(grpcio_server_command())
    servers.append(server)
    outcomes: List[Outcome] = []
    lock = threading.Lock()
    with grpcpool.Pool() as pool:
        pool.unary(server.target, UNARY, b"warm", timeout=5)

        def unary(index: int) -> None:
            outcome = timed_unary(pool, server.target, UNARY, b"slow", TIMEOUT, (("x-sleep-ms", "5000"),))
            with lock:
                outcomes.append(outcome)

        def stream(index: int) -> None:
            # The request is written and never answered: the stream waits at its first read.
            started = time.monotonic()
            call = pool.stream(server.target, BIDI, timeout=TIMEOUT)
            try:
                call.read()  # Bidi answers only written messages: this read waits
                code, details = "OK", ""
            except grpcpool.RpcError as error:
                code, details = error.code().name, error.details()
            with lock:
                outcomes.append(Outcome(started, time.monotonic() - started, code, details))

        bounded_threads(CALLS, unary)
        bounded_threads(STREAMS, stream)
        stats = target_stats(pool, server.target)

    lateness = [outcome.elapsed - TIMEOUT for outcome in outcomes]
    report(
        "deadlines",
        calls=len(outcomes),
        by_status=tally(outcomes),
        latest_ms=round(max(lateness) * 1000, 1),
        earliest_ms=round(min(lateness) * 1000, 1),
        leases_out=stats["leases_out"],
        streams_in_flight=stats["streams_in_flight"],
    )
    assert tally(outcomes) == {"DEADLINE_EXCEEDED": CALLS + STREAMS}
    assert min(lateness) >= -0.005, "a call ended before its deadline"
    assert max(lateness) < LATE_BOUND
    assert stats["leases_out"] == 0 and stats["streams_in_flight"] == 0
