"""Keepalive against a strict grpcio ping policy: the server allows a ping every 1.5 s while
it sends nothing (grpc.http2.min_ping_interval_without_data_ms) and two strikes; a client
pinging every second draws one GOAWAY too_many_pings, doubles its interval to 2 s (gRPC A8)
and is left alone from then on: no GOAWAY loop."""

from __future__ import annotations

from typing import List

import grpcpool

from conftest import UNARY, Server, grpcio_server_command, report, target_stats, timed_unary

KEEPALIVE_TIME = 1.0


def test_too_many_pings_doubles_the_interval_once_and_does_not_loop(servers: List[Server]) -> None:
    server = Server(
        grpcio_server_command(
            "grpc.http2.min_ping_interval_without_data_ms=1500",
            "grpc.http2.max_ping_strikes=2",
            "grpc.keepalive_permit_without_calls=0",
        )
    )
    servers.append(server)
    target = server.target
    with grpcpool.Pool(keepalive_time=KEEPALIVE_TIME) as pool:
        # The server answers after 8 s and sends nothing before: every ping counts.
        first = timed_unary(pool, target, UNARY, b"held", 15.0, (("x-sleep-ms", "8000"),))
        after_first = target_stats(pool, target)
        # On the doubled interval the pings are far enough apart: this one runs its 8 s out.
        second = timed_unary(pool, target, UNARY, b"held", 15.0, (("x-sleep-ms", "8000"),))
        after_second = target_stats(pool, target)
        # Calls go on as usual.
        third = timed_unary(pool, target, UNARY, b"quick", 5.0)
    report(
        "keepalive_strict_grpcio",
        first_call=first.code,
        first_ended_after_s=round(first.elapsed, 2),
        goaways_after_first=after_first["goaways_received"],
        keepalive_time_ms=after_first["keepalive_time_ms"],
        second_call=second.code,
        goaways_after_second=after_second["goaways_received"],
        connects=after_second["connects"],
    )
    assert after_first["goaways_received"] == 1
    assert after_first["keepalive_time_ms"] == 2 * int(KEEPALIVE_TIME * 1000)
    assert second.code == "OK", second
    assert third.code == "OK", third
    assert after_second["goaways_received"] == 1, "the GOAWAY came back: a loop"
    assert after_second["keepalive_time_ms"] == 2 * int(KEEPALIVE_TIME * 1000)
