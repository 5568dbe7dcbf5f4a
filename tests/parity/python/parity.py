"""The Python face's answers to the parity scenarios, one JSON object per line.

Usage: parity.py <target> <down_target>

<target> is grpcpool's echo server (`grpcpool-echo-server --port 0` prints `LISTENING <port>`;
its unary method `/grpcpool.test.Echo/Unary` echoes the request, `x-sleep-ms: N` makes it
sleep, and the response header `x-received-grpc-encoding` shows the request's encoding);
<down_target> is an address nothing listens on. The scenarios and the class each must give are
in tests/parity/expected.txt; tests/parity/run.sh runs every face and compares them. Each line is

    {"scenario": S, "class": C, "via": "status" | "error" | "ok", "detail": "..."}

where `via` says how the outcome came: as the call's gRPC status, as an exception, or as a
success; `class` is one of ok, deadline_exceeded, resource_exhausted, invalid_argument,
pool_closed, unavailable, busy, stream_closed or other:<what>. Every scenario uses a fresh
pool and the synchronous API of the installed `grpcpool` package. The script reports; it
judges nothing (the runner compares the faces), so it exits 0 whatever the outcomes.
"""

from __future__ import annotations

import json
import sys
from concurrent import futures
from typing import Any, Callable, Dict, List, Optional, Tuple

import grpcpool
from grpcpool import _native

UNARY = "/grpcpool.test.Echo/Unary"
BIDI = "/grpcpool.test.Echo/Bidi"

#: Status codes with a class of their own; any other code is other:<code>.
STATUS_CLASSES = {
    grpcpool.StatusCode.DEADLINE_EXCEEDED: "deadline_exceeded",
    grpcpool.StatusCode.RESOURCE_EXHAUSTED: "resource_exhausted",
    grpcpool.StatusCode.INVALID_ARGUMENT: "invalid_argument",
    grpcpool.StatusCode.UNAVAILABLE: "unavailable",
}

#: What a scenario gives back: (class, via, detail).
Outcome = Tuple[str, str, str]


def from_response(response: grpcpool.Response) -> Outcome:
    """A call's outcome from its response: ok, or the class of its status."""
    if response.ok:
        return "ok", "ok", f"{len(response.body)} bytes"
    name = STATUS_CLASSES.get(response.code, f"other:{response.code.name.lower()}")
    return name, "status", response.details


def from_exception(error: BaseException) -> Outcome:
    """The class of an exception the face raised (checked from the most specific class)."""
    if isinstance(error, grpcpool.RpcError):
        return from_response(error.response)
    if isinstance(error, grpcpool.PoolClosedError):
        name = "pool_closed"
    elif isinstance(error, grpcpool.StreamClosedError):
        name = "stream_closed"
    elif isinstance(error, ValueError):
        # Bad input: the face raises ValueError where a server would answer INVALID_ARGUMENT.
        name = "invalid_argument"
    elif isinstance(error, grpcpool.BusyError):
        # A second operation of a kind already waiting on a stream, or a stream on a lease with
        # calls in flight (core's Busy).
        name = "busy"
    else:
        name = f"other:{type(error).__name__}"
    return name, "error", str(error)


def unary(pool: grpcpool.Pool, target: str, request: bytes = b"parity", **options: Any) -> Outcome:
    """One unary call, whatever its outcome."""
    try:
        return from_response(pool.unary_response(target, UNARY, request, **options))
    except Exception as error:  # noqa: BLE001 - every outcome is reported
        return from_exception(error)


def fresh(**settings: Any) -> grpcpool.Pool:
    return grpcpool.Pool(**settings)


def timeout_zero(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return unary(pool, target, timeout=0)


def deadline(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return unary(pool, target, timeout=0.1, metadata=[("x-sleep-ms", "500")])


def oversized_request(target: str, down: str) -> Outcome:
    with fresh(max_send_message_size=1024) as pool:
        return unary(pool, target, b"x" * 2000, timeout=5.0)


def oversized_response(target: str, down: str) -> Outcome:
    with fresh(max_receive_message_size=512) as pool:
        # The server echoes the request, so the response is 800 bytes too.
        return unary(pool, target, b"x" * 800, timeout=5.0)


def bad_metadata(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return unary(pool, target, timeout=5.0, metadata=[("Bad Key", "v")])


def closed_pool(target: str, down: str) -> Outcome:
    pool = fresh()
    pool.close()
    return unary(pool, target, timeout=5.0)


def gzip(target: str, down: str) -> Outcome:
    with fresh() as pool:
        try:
            response = pool.unary_response(target, UNARY, b"z" * 1000, timeout=5.0, compression="gzip")
        except Exception as error:  # noqa: BLE001 - every outcome is reported
            return from_exception(error)
    if not response.ok:
        return from_response(response)
    encoding = dict(response.headers).get("x-received-grpc-encoding")
    if encoding == "gzip":
        return "ok", "ok", "x-received-grpc-encoding: gzip"
    return "wrong_encoding", "ok", f"x-received-grpc-encoding: {encoding!r}"


def pushed_none(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return unary(pool, "static:///parity", timeout=5.0)


def pushed_endpoints(target: str, down: str) -> Outcome:
    with fresh() as pool:
        pool.set_endpoints("parity", [target.split("//", 1)[1]])
        return unary(pool, "static:///parity", timeout=5.0)


def pushed_bad_endpoint(target: str, down: str) -> Outcome:
    with fresh() as pool:
        try:
            pool.set_endpoints("parity", ["127.0.0.1"])
        except Exception as error:  # noqa: BLE001 - every outcome is reported
            return from_exception(error)
        return "ok", "", ""


def fail_fast_down(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return unary(pool, down, timeout=1.0)


def wait_for_ready_down(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return unary(pool, down, timeout=0.3, wait_for_ready=True)


def concurrent_send(target: str, down: str) -> Outcome:
    # The smallest HTTP/2 windows, and nobody reads the echoes: a send soon waits on flow
    # control, and a second send meanwhile is refused (core's Busy), never queued. Each send
    # runs on a worker thread and is given 300 ms; the first one still waiting is the blocked
    # one (at most 400 sends, 12.5 MiB).
    with fresh(initial_stream_window_size=65535, initial_connection_window_size=65535) as pool:
        try:
            stream = pool.stream(target, BIDI, timeout=20.0)
        except Exception as error:  # noqa: BLE001 - every outcome is reported
            return from_exception(error)
        chunk = b"\0" * (32 * 1024)
        with futures.ThreadPoolExecutor(1) as sender:
            blocked: Optional["futures.Future[None]"] = None
            sent = 0
            for _ in range(400):
                sending = sender.submit(stream.write, chunk)
                try:
                    sending.result(timeout=0.3)
                except futures.TimeoutError:
                    blocked = sending
                    break
                except Exception as error:  # noqa: BLE001 - every outcome is reported
                    stream.cancel()
                    name, via, _ = from_exception(error)
                    return name, via, f"send {sent + 1} failed: {error}"
                sent += 1
            if blocked is None:
                stream.cancel()
                return "other:never_blocked", "ok", f"{sent} sends, none waited on flow control"
            try:
                stream.write(b"x")
                outcome: Outcome = ("ok", "ok", f"a second send while send {sent + 1} waited")
            except Exception as error:  # noqa: BLE001 - every outcome is reported
                name, via, _ = from_exception(error)
                outcome = (name, via, f"while send {sent + 1} waited: {error}")
            # The cancel must wake the waiting send (StreamClosedError or the call's end).
            stream.cancel()
            try:
                blocked.result(timeout=5.0)
                woke = "it completed"
            except futures.TimeoutError:
                return "other:send_not_woken", "error", "a cancel left the waiting send waiting"
            except Exception as error:  # noqa: BLE001 - the expected end of the waiting send
                woke = f"{type(error).__name__}: {error}"
        name, via, detail = outcome
        return name, via, f"{detail}; after the cancel the waiting send ended: {woke}"


def settings_by_name(target: str, down: str) -> Outcome:
    # Every setting of core's table by its name at its default; None is the default of the
    # ones unset by default (the TLS material and server name).
    settings: Dict[str, Any] = {row[0]: row[4] for row in _native.settings()}
    with fresh(**settings) as pool:
        name, via, detail = unary(pool, target, timeout=5.0)
    return (name, via, f"{len(settings)} settings") if name == "ok" else (name, via, detail)


def settled_connectivity(pool: grpcpool.Pool, target: str) -> Outcome:
    """try_to_connect, then waits (bounded) for a state other than IDLE and CONNECTING."""
    try:
        state = pool.connectivity(target, try_to_connect=True)
        for _ in range(20):
            if state not in (grpcpool.Connectivity.IDLE, grpcpool.Connectivity.CONNECTING):
                break
            state = pool.wait_for_connectivity_change(target, state, timeout=5.0)
    except Exception as error:  # noqa: BLE001 - every outcome is reported
        return from_exception(error)
    return state.name.lower(), "state", ""


def connectivity_unused(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return pool.connectivity(target).name.lower(), "state", ""


def connectivity_up(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return settled_connectivity(pool, target)


def connectivity_down(target: str, down: str) -> Outcome:
    with fresh() as pool:
        return settled_connectivity(pool, down)


def connectivity_closed(target: str, down: str) -> Outcome:
    pool = fresh()
    pool.close()
    return pool.connectivity(target).name.lower(), "state", ""


SCENARIOS: List[Tuple[str, Callable[[str, str], Outcome]]] = [
    ("timeout_zero", timeout_zero),
    ("deadline", deadline),
    ("oversized_request", oversized_request),
    ("oversized_response", oversized_response),
    ("bad_metadata", bad_metadata),
    ("closed_pool", closed_pool),
    ("gzip", gzip),
    ("fail_fast_down", fail_fast_down),
    ("pushed_none", pushed_none),
    ("pushed_endpoints", pushed_endpoints),
    ("pushed_bad_endpoint", pushed_bad_endpoint),
    ("wait_for_ready_down", wait_for_ready_down),
    ("concurrent_send", concurrent_send),
    ("settings_by_name", settings_by_name),
    ("connectivity_unused", connectivity_unused),
    ("connectivity_up", connectivity_up),
    ("connectivity_down", connectivity_down),
    ("connectivity_closed", connectivity_closed),
]


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    target, down = args
    for scenario, run in SCENARIOS:
        try:
            name, via, detail = run(target, down)
        except Exception as error:  # noqa: BLE001 - a scenario that breaks is reported too
            name, via, detail = from_exception(error)
        print(json.dumps({"scenario": scenario, "class": name, "via": via, "detail": detail}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
