"""A GOAWAY storm: grpcio's server with max_connection_age 100 ms sends GOAWAY to every
connection ten times a second while unary calls and short streams go through the Python face.
Nothing may fail without having reached the server, and nothing may run twice."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import List

import grpcpool

from conftest import BIDI, SEEN, UNARY, Outcome, Server, bounded_threads, grpcio_server_command, report, tally

THREADS = 8
SECONDS = 6.0
CALLS_PER_THREAD = 2_000


def test_goaway_storm_loses_no_call_that_never_reached_the_server(servers: List[Server]) -> None:
    server = Server(
        grpcio_server_command("grpc.max_connection_age_ms=100", "grpc.max_connection_age_grace_ms=2000")
    )
    servers.append(server)
    ids = itertools.count()
    lock = threading.Lock()
    outcomes: List[tuple[str, Outcome]] = []
    with grpcpool.Pool() as pool:
        pool.unary(server.target, UNARY, b"warm", timeout=5)
        until = time.monotonic() + SECONDS

        def load(index: int) -> None:
            # Even threads make unary calls, odd ones streams of 1-3 messages.
            for round_ in range(CALLS_PER_THREAD):
                if time.monotonic() >= until:
                    return
                call_id = f"{index}-{next(ids)}"
                metadata = (("x-call-id", call_id),)
                started = time.monotonic()
                try:
                    if index % 2 == 0:
                        pool.unary(server.target, UNARY, call_id.encode(), timeout=10, metadata=metadata)
                    else:
                        messages = [f"{call_id}/{n}".encode() for n in range(1 + round_ % 3)]
                        replies = list(pool.stream_stream(server.target, BIDI, iter(messages), timeout=10, metadata=metadata))
                        assert replies == messages
                    outcome = Outcome(started, time.monotonic() - started, "OK")
                except grpcpool.RpcError as error:
                    outcome = Outcome(started, time.monotonic() - started, error.code().name, error.details())
                with lock:
                    outcomes.append((call_id, outcome))

        bounded_threads(THREADS, load)
        stats = pool.stats()["targets"][0]
        seen = json.loads(pool.unary(server.target, SEEN, b"", timeout=5))

    seen_ids = set(seen["ids"])
    failed = [(call_id, outcome) for call_id, outcome in outcomes if outcome.code != "OK"]
    never_reached = [call_id for call_id, _ in failed if call_id not in seen_ids]
    made = {call_id for call_id, _ in outcomes}
    report(
        "goaway_storm",
        calls=len(outcomes),
        by_status=tally([outcome for _, outcome in outcomes]),
        server_saw=len(seen_ids),
        repeated=len(seen["repeated"]),
        goaways=stats["goaways_received"],
        transparent_retries=stats["transparent_retries"],
        connects=stats["connects"],
    )
    assert stats["goaways_received"] >= 10, "the storm did not happen"
    assert never_reached == [], f"{len(never_reached)} failed calls never reached the server: {failed[:3]}"
    assert seen["repeated"] == [], "the server ran calls twice"
    assert seen_ids <= made, "the server saw calls that were never made"
    assert failed == [], f"calls failed after reaching the server: {failed[:3]}"
    assert len(seen_ids) == len(made), "the server's count is not the calls made"
