"""A blackhole: the server sits in a network namespace reached over a veth pair, and every
packet into the namespace is dropped (iptables DROP) while calls flow. Keepalive (1 s / 1 s)
must find the dead connection within keepalive_time + keepalive_timeout, calls stuck on it
must end then, calls made while the connection is redialed must fail fast, and calls must
succeed again once the block is lifted."""

from __future__ import annotations

import threading
import time
from typing import List

import grpcpool

from conftest import UNARY, Namespace, Outcome, Server, bounded_threads, grpcio_server_command, report, tally, target_stats, timed_unary

KEEPALIVE_TIME = 1.0
KEEPALIVE_TIMEOUT = 1.0
# A ping goes out at most keepalive_time after the block, and is given keepalive_timeout;
# the slack covers the scheduling of the detection and of this test's threads.
DETECTION_BOUND = KEEPALIVE_TIME + KEEPALIVE_TIMEOUT + 0.5
BLOCKED_FOR = 5.0
TIMEOUT = 3.0


def test_a_blackholed_peer_is_found_by_keepalive_and_calls_fail_fast_until_it_answers(
    namespace: Namespace, servers: List[Server]
) -> None:
    server = Server(namespace.command(grpcio_server_command(host=namespace.address)), host=namespace.address)
    servers.append(server)
    target = server.target
    outcomes: List[Outcome] = []
    lock = threading.Lock()
    with grpcpool.Pool(keepalive_time=KEEPALIVE_TIME, keepalive_timeout=KEEPALIVE_TIMEOUT) as pool:
        pool.unary(target, UNARY, b"warm", timeout=5)
        stuck: List[Outcome] = []
        # A call the server holds for 30 s: it is in flight when the block starts.
        holder = threading.Thread(
            target=lambda: stuck.append(
                timed_unary(pool, target, UNARY, b"held", 30.0, (("x-sleep-ms", "30000"),))
            ),
            daemon=True,
        )
        holder.start()
        time.sleep(0.5)
        blocked_at = time.monotonic()
        namespace.blackhole()
        lifted: List[float] = []
        until = blocked_at + BLOCKED_FOR + 8.0

        def load(index: int) -> None:
            for _ in range(100_000):
                if time.monotonic() >= until:
                    return
                outcome = timed_unary(pool, target, UNARY, b"x" * 64, TIMEOUT)
                with lock:
                    outcomes.append(outcome)
                if outcome.code == "OK" and lifted:
                    return
                if outcome.code != "OK":
                    time.sleep(0.02)

        loaders = threading.Thread(target=bounded_threads, args=(2, load), daemon=True)
        loaders.start()
        time.sleep(BLOCKED_FOR)
        namespace.lift()
        lifted.append(time.monotonic())
        loaders.join(timeout=60)
        holder.join(timeout=30)
        assert not loaders.is_alive() and not holder.is_alive()
        stats = target_stats(pool, target)

    assert len(stuck) == 1
    detected_after = stuck[0].started + stuck[0].elapsed - blocked_at
    detected_at = blocked_at + detected_after
    after_detection = [o for o in outcomes if detected_at + 0.05 <= o.started < lifted[0]]
    successes = sorted(o.started + o.elapsed for o in outcomes if o.code == "OK" and o.started >= lifted[0])
    recovered_after = successes[0] - lifted[0] if successes else None
    report(
        "blackhole",
        detected_after_s=round(detected_after, 3),
        stuck_call=stuck[0].code,
        calls=len(outcomes),
        by_status=tally(outcomes),
        calls_after_detection=len(after_detection),
        slowest_after_detection_ms=round(max((o.elapsed for o in after_detection), default=0) * 1000, 1),
        recovered_after_lift_s=None if recovered_after is None else round(recovered_after, 3),
        keepalive_timeouts=stats["keepalive_timeouts"],
    )
    assert stuck[0].code == "UNAVAILABLE", stuck[0]
    assert detected_after < DETECTION_BOUND
    assert stats["keepalive_timeouts"] >= 1
    assert after_detection, "no call was made between detection and the lift"
    assert {o.code for o in after_detection} == {"UNAVAILABLE"}, tally(after_detection)
    assert max(o.elapsed for o in after_detection) < 0.5, "calls waited instead of failing fast"
    assert recovered_after is not None, "no call succeeded after the block was lifted"
    # The redial pending through the block gets through on its SYN's next retransmit (about
    # 1, 3, 7 s after it was sent) or on the next backoff attempt.
    assert recovered_after < 8.0
    assert stats["leases_out"] == 0 and stats["streams_in_flight"] == 0
