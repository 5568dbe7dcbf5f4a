"""The Python face of the parity suite's discovery scenarios (tests/parity/discovery.sh).

Usage: discovery.py <A> <B> <C> <D>, each backend's ip:port.

Calls to xds:///svc through the control plane the runner started (the bootstrap is in
GRPC_XDS_BOOTSTRAP), then static:///load under load while ``Pool.set_endpoints`` adds, removes
and replaces its endpoints. Prints one JSON line per scenario, as parity.py does; the rules are
the same in every face (see tests/parity/expected-discovery.txt). Uses the synchronous API of
the installed ``grpcpool`` package, the load on threads.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import List, Sequence

import grpcpool

UNARY = "/grpcpool.test.Echo/Unary"
#: The xds_weighted_split scenario's calls.
SPLIT_CALLS = 800
#: The load: workers, each making at most MAX_CALLS calls, all within LOAD_LIMIT seconds.
WORKERS = 4
MAX_CALLS = 4000
LOAD_LIMIT = 30.0
#: After an update, the new set must be all that answers within this long.
SETTLE = 2.0
#: The new set has settled once this many calls in a row came from it.
SETTLED_RUN = 20
#: Each set then takes the load this long before the next update.
HOLD = 0.3
#: round_robin: connections to every address, so every member of a set takes calls.
ROUND_ROBIN = {"loadBalancingConfig": [{"round_robin": {}}]}
#: A failed call in the record.
FAILED = -1


def report(scenario: str, class_name: str, detail: str) -> None:
    print(json.dumps({"scenario": scenario, "class": class_name, "via": "python", "detail": detail}), flush=True)


def served_by(pool: grpcpool.Pool, target: str, backends: Sequence[str]) -> int:
    """Which backend answered one call: its index, len(backends) for none of them, FAILED."""
    try:
        response = pool.unary_response(target, UNARY, b"x", timeout=10.0, metadata=[("x-report-calls", "1")])
    except Exception:  # whatever the face raised, the call failed
        return FAILED
    if not response.ok:
        return FAILED
    for key, value in response.headers:
        if key == "x-echo-served-by" and value in backends:
            return list(backends).index(str(value))
    return len(backends)


def xds_stats(pool: grpcpool.Pool) -> None:
    """The pool's xDS stats after the calls: connected, a resource of each kind held, no NACK."""
    xds = pool.stats().get("xds")
    kinds = {resource["kind"] for resource in xds["resources"]} if xds else set()
    missing = sorted({"listener", "route_config", "cluster", "endpoints"} - kinds)
    if not xds:
        class_name = "no_xds_stats"
    elif not xds["connected"]:
        class_name = "not_connected"
    elif xds["nacks"]:
        class_name = "nacked"
    elif missing:
        class_name = "missing_kind"
    else:
        class_name = "connected_all_kinds"
    report("xds_stats", class_name, f"no {', '.join(missing)}" if missing else "")


def weighted_split(backends: Sequence[str]) -> None:
    """800 calls to xds:///svc, counted by who answered; discovery.sh judges the counts."""
    served = [0] * (len(backends) + 1)
    failed = 0
    with grpcpool.Pool() as pool:
        for _ in range(SPLIT_CALLS):
            by = served_by(pool, "xds:///svc", backends)
            if by == FAILED:
                failed += 1
            else:
                served[by] += 1
        xds_stats(pool)
    a, b, c = served[0], served[1], served[2]
    detail = f"A={a} B={b} C={c} D={served[3]} other={served[4]} failed={failed}"
    report("xds_weighted_split", "counted", detail)


def settled(record: List[int], start: int, members: Sequence[int]) -> bool:
    """Whether the calls recorded since ``start`` reached every member and the last
    SETTLED_RUN of them all came from the set."""
    since = record[start:]
    return all(member in since for member in members) and len(since) >= SETTLED_RUN and all(
        by in members for by in since[-SETTLED_RUN:]
    )


def pushed_under_load(backends: Sequence[str]) -> None:
    steps = [("pushed_add", [0, 1]), ("pushed_remove", [1]), ("pushed_replace", [2, 3])]
    record: List[int] = []
    stop = threading.Event()
    with grpcpool.Pool(service_config=ROUND_ROBIN) as pool:
        pool.set_endpoints("load", [backends[0]])
        until = time.monotonic() + LOAD_LIMIT

        def work() -> None:
            for _ in range(MAX_CALLS):
                if stop.is_set() or time.monotonic() >= until:
                    return
                record.append(served_by(pool, "static:///load", backends))

        workers = [threading.Thread(target=work) for _ in range(WORKERS)]
        for worker in workers:
            worker.start()
        waited = time.monotonic() + 5.0
        while len(record) < 50 and time.monotonic() < waited:
            time.sleep(0.01)
        marks, took = [], []
        for _, members in steps:
            marks.append(len(record))
            started = time.monotonic()
            pool.set_endpoints("load", [backends[member] for member in members])
            took.append(-1)
            while time.monotonic() - started <= SETTLE:
                if settled(record, marks[-1], members):
                    took[-1] = round((time.monotonic() - started) * 1000)
                    break
                time.sleep(0.005)
            time.sleep(HOLD)
        stop.set()
        for worker in workers:
            worker.join()
        marks.append(len(record))
    for index, (scenario, _) in enumerate(steps):
        calls = record[marks[index] : marks[index + 1]]
        failed = calls.count(FAILED)
        class_name = "failed_calls" if failed else "not_within_2s" if took[index] < 0 else "ok"
        detail = f"{len(calls)} calls, {failed} failed, new set alone after {took[index]} ms"
        report(scenario, class_name, detail)


def main(argv: List[str]) -> int:
    if len(argv) != 5:
        print("usage: discovery.py <A> <B> <C> <D>", file=sys.stderr)
        return 2
    backends = argv[1:]
    weighted_split(backends)
    pushed_under_load(backends)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
