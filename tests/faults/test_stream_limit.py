"""A server that takes one stream per connection (grpcio's grpc.max_concurrent_streams 1)
and 32 callers: no call fails, and the pool grows to its maximum number of connections."""

from __future__ import annotations

import threading
from typing import List

import grpcpool

from conftest import UNARY, Outcome, Server, bounded_threads, grpcio_server_command, report, tally, target_stats, timed_unary

CALLERS = 32
CALLS_EACH = 25
MAX_CONNECTIONS = 4


def test_thirty_two_callers_on_one_stream_per_connection_all_succeed(servers: List[Server]) -> None:
    server = Server(grpcio_server_command("grpc.max_concurrent_streams=1"))
    servers.append(server)
    outcomes: List[Outcome] = []
    lock = threading.Lock()
    with grpcpool.Pool(max_connections_per_target=MAX_CONNECTIONS) as pool:

        def call(index: int) -> None:
            for _ in range(CALLS_EACH):
                # 5 ms in the server: callers overlap and must queue for the four streams.
                outcome = timed_unary(pool, server.target, UNARY, b"x" * 128, 20.0, (("x-sleep-ms", "5"),))
                with lock:
                    outcomes.append(outcome)

        bounded_threads(CALLERS, call)
        stats = target_stats(pool, server.target)

    report(
        "max_concurrent_streams_1",
        calls=len(outcomes),
        by_status=tally(outcomes),
        connections=stats["connections"],
        connects=stats["connects"],
        acquire_wait_p99_us=stats["acquire_wait"]["p99_us"],
    )
    assert tally(outcomes) == {"OK": CALLERS * CALLS_EACH}
    assert stats["connections"]["ready"] == MAX_CONNECTIONS
    assert stats["leases_out"] == 0 and stats["streams_in_flight"] == 0
