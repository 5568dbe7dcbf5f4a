"""The server is killed with SIGKILL under load and restarted on the same port: calls in the
outage fail fast with UNAVAILABLE, none overruns its deadline, success resumes within the
backoff step in force, and no lease is left out."""

from __future__ import annotations

import threading
import time
from typing import List

import grpcpool

from conftest import ECHO_UNARY, Outcome, Server, bounded_threads, echo_server_command, free_port, report, tally, target_stats, timed_unary

THREADS = 4
TIMEOUT = 1.0
# The outage: long enough for the first reconnect attempt (backoff_initial, 1 s) to fail.
OUTAGE = 1.5
# The defaults of backoff_initial, backoff_multiplier and backoff_jitter: after a loss the
# attempts land at about 0, 1.0, 2.6 s (each delay within ±20%).
BACKOFF_STEP_AT_RESTART = 1.0 * 1.6 * 1.2
# Time for a call that sees the new connection to come back (the echo is immediate).
SLACK = 0.5


def test_calls_fail_fast_while_the_server_is_down_and_resume_after_its_restart(servers: List[Server]) -> None:
    port = free_port()
    server = Server(echo_server_command(port))
    servers.append(server)
    target = server.target
    outcomes: List[Outcome] = []
    lock = threading.Lock()
    with grpcpool.Pool() as pool:
        pool.unary(target, ECHO_UNARY, b"warm", timeout=5)
        start = time.monotonic()
        events = {}
        # 1 s of calls, then the kill, the outage, the restart and up to 6 s more.
        until = start + 1.0 + OUTAGE + 6.0

        def load(index: int) -> None:
            for _ in range(200_000):
                now = time.monotonic()
                if now >= until:
                    return
                outcome = timed_unary(pool, target, ECHO_UNARY, b"x" * 64, TIMEOUT)
                with lock:
                    outcomes.append(outcome)
                if outcome.code != "OK":
                    time.sleep(0.01)  # a failed call costs nothing: don't spin on it

        loaders = threading.Thread(target=bounded_threads, args=(THREADS, load), daemon=True)
        loaders.start()
        time.sleep(1.0)
        events["killed"] = time.monotonic()
        server.kill()
        time.sleep(OUTAGE)
        restarted = Server(echo_server_command(port))
        servers.append(restarted)
        events["restarted"] = time.monotonic()
        loaders.join(timeout=60)
        assert not loaders.is_alive()
        stats = target_stats(pool, target)

    killed, restarted_at = events["killed"], events["restarted"]
    in_outage = [o for o in outcomes if killed + 0.05 <= o.started and o.started + o.elapsed <= restarted_at]
    failed = [o for o in outcomes if o.code != "OK"]
    slowest_failure = max((o.elapsed for o in failed), default=0.0)
    successes_after = sorted(o.started + o.elapsed for o in outcomes if o.code == "OK" and o.started >= restarted_at)
    recovered_after = successes_after[0] - restarted_at if successes_after else None
    report(
        "kill_restart",
        calls=len(outcomes),
        by_status=tally(outcomes),
        outage_calls=len(in_outage),
        slowest_failure_ms=round(slowest_failure * 1000, 1),
        slowest_call_ms=round(max(o.elapsed for o in outcomes) * 1000, 1),
        recovered_after_restart_s=None if recovered_after is None else round(recovered_after, 3),
        reconnects=stats["reconnects"],
        connect_failures=stats["connect_failures"],
        leases_out=stats["leases_out"],
    )
    assert in_outage, "no call was made in the outage"
    assert {o.code for o in in_outage} == {"UNAVAILABLE"}, tally(in_outage)
    # Fail fast: an outage call ends long before its deadline; and no call overruns it.
    assert max(o.elapsed for o in in_outage) < TIMEOUT / 2
    assert {o.code for o in failed} <= {"UNAVAILABLE"}, tally(failed)
    assert all(o.elapsed < TIMEOUT + 0.1 for o in outcomes), "a call overran its deadline"
    assert recovered_after is not None, "no call succeeded after the restart"
    assert recovered_after < BACKOFF_STEP_AT_RESTART + SLACK
    assert stats["leases_out"] == 0 and stats["streams_in_flight"] == 0
