"""A grpcio server for the fault suite, run as a process of its own so that it can be killed,
moved into a network namespace, and so that its threads do not share the client's GIL.

Usage: grpcio_server.py [--host H] [--port N] [--option NAME=INT ...]
Prints ``LISTENING <port>`` once it serves. Methods (raw bytes, no protobuf):

- ``/faults.Echo/Unary``: answers with the request. Metadata ``x-sleep-ms`` sleeps first;
  ``x-call-id`` is recorded, so the suite can tell which calls reached the server.
- ``/faults.Echo/Bidi``: answers each request message with itself; ``x-call-id`` recorded.
- ``/faults.Echo/Seen``: answers with JSON ``{"calls": N, "ids": [...], "repeated": [...]}``:
  calls handled (Seen excepted), the distinct ids seen, and ids seen more than once.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent import futures
from typing import Dict, Iterator, List, Tuple

import grpc


class Ledger:
    """What the server saw, kept under a lock (handlers run on the server's thread pool)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.ids: Dict[str, int] = {}

    def record(self, context: grpc.ServicerContext) -> Dict[str, str]:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        with self.lock:
            self.calls += 1
            call_id = metadata.get("x-call-id")
            if call_id is not None:
                self.ids[call_id] = self.ids.get(call_id, 0) + 1
        return metadata

    def report(self) -> bytes:
        with self.lock:
            body = {
                "calls": self.calls,
                "ids": sorted(self.ids),
                "repeated": sorted(key for key, count in self.ids.items() if count > 1),
            }
        return json.dumps(body).encode()


def handlers(ledger: Ledger) -> grpc.GenericRpcHandler:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = ledger.record(context)
        sleep_ms = int(metadata.get("x-sleep-ms", "0"))
        if sleep_ms:
            # In steps, so a call the client gave up on stops holding a server thread.
            until = time.monotonic() + sleep_ms / 1000
            while context.is_active() and time.monotonic() < until:
                time.sleep(min(0.05, max(0.0, until - time.monotonic())))
        return request

    def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        ledger.record(context)
        for request in requests:
            yield request

    def seen(request: bytes, context: grpc.ServicerContext) -> bytes:
        return ledger.report()

    return grpc.method_handlers_generic_handler(
        "faults.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Seen": grpc.unary_unary_rpc_method_handler(seen),
        },
    )


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], help="a grpcio channel arg NAME=INT")
    args = parser.parse_args(argv)
    options: List[Tuple[str, int]] = []
    for option in args.option:
        name, _, value = option.partition("=")
        options.append((name, int(value)))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=options)
    server.add_generic_rpc_handlers((handlers(Ledger()),))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"LISTENING {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1:])
