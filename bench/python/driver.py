"""The Python client rows of grpcpool-bench, speaking the harness's driver protocol
(bench/src/driver.rs):

    python driver.py --client CLIENT --target URL --concurrency N --seconds S --payload BYTES
        [--connections K] [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
    python driver.py --client CLIENT --check

CLIENT is grpcpool-sync (N threads of blocking calls), grpcpool-aio (N tasks on one event
loop), grpcio-sync (N threads) or grpc-aio (N tasks). After --warmup seconds uncounted it runs
N closed loops of unary calls for S seconds and prints one JSON line: calls, errors, seconds,
qps, p50_us, p99_us, cpu_us_per_call (getrusage of this process over the counted window) and
peak_rss_kib. grpcpool keeps K connections (min = max = K); grpcio gets K channels, each with
its own subchannel pool so that each is a connection of its own, used in rotation. Requests
are pre-encoded bytes, as in every other row, so protobuf is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import threading
import time
from typing import Any, Awaitable, Callable, List, Optional, Tuple
from urllib.parse import urlparse

INTEROP_UNARY = "/grpc.testing.TestService/UnaryCall"
CLIENTS = ("grpcpool-sync", "grpcpool-aio", "grpcio-sync", "grpc-aio")
#: Bounds every loop by count as well as by time.
MAX_CALLS_PER_WORKER = 2_000_000
WARM_UP_CONCURRENCY_CAP = 1024
CALL_TIMEOUT = 10.0


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def request(payload: int) -> bytes:
    """The interop SimpleRequest{response_size: payload, payload: {body: payload zero bytes}}."""
    if payload == 0:
        return b""
    body = b"\x12" + varint(payload) + bytes(payload)
    return b"\x10" + varint(payload) + b"\x1a" + varint(len(body)) + body


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def percentile(ordered: List[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(max(int(-(-len(ordered) * q // 1)), 1), len(ordered)) - 1
    return ordered[index]


def report(latencies: List[float], errors: int, wall: float, cpu: float) -> str:
    latencies.sort()
    calls = len(latencies)
    return json.dumps(
        {
            "calls": calls,
            "errors": errors,
            "seconds": wall,
            "qps": calls / max(wall, 1e-9),
            "p50_us": percentile(latencies, 0.50),
            "p99_us": percentile(latencies, 0.99),
            "cpu_us_per_call": cpu * 1e6 / calls if calls else 0.0,
            "peak_rss_kib": peak_rss_kib(),
        }
    )


Measured = Tuple[List[float], int]


def load_threads(call: Callable[[], None], threads: int, seconds: float) -> Measured:
    """`threads` closed loops of `call` for `seconds`; latencies in µs and the error count."""
    stop = time.monotonic() + seconds
    results: List[Measured] = [([], 0)] * threads

    def worker(index: int) -> None:
        latencies: List[float] = []
        errors = 0
        clock = time.perf_counter
        while time.monotonic() < stop and len(latencies) < MAX_CALLS_PER_WORKER:
            started = clock()
            try:
                call()
            except Exception:  # noqa: BLE001 - any failure is an error of the row
                errors += 1
                continue
            latencies.append((clock() - started) * 1e6)
        results[index] = (latencies, errors)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(seconds + 2 * CALL_TIMEOUT)
    return [x for r in results for x in r[0]], sum(r[1] for r in results)


async def load_tasks(call: Callable[[], Awaitable[Any]], tasks: int, seconds: float) -> Measured:
    """`tasks` closed loops of `call` on this event loop for `seconds`."""
    stop = time.monotonic() + seconds

    async def worker() -> Measured:
        latencies: List[float] = []
        errors = 0
        clock = time.perf_counter
        while time.monotonic() < stop and len(latencies) < MAX_CALLS_PER_WORKER:
            started = clock()
            try:
                await call()
            except Exception:  # noqa: BLE001 - any failure is an error of the row
                errors += 1
                continue
            latencies.append((clock() - started) * 1e6)
        return latencies, errors

    results = await asyncio.gather(*(worker() for _ in range(tasks)))
    return [x for r in results for x in r[0]], sum(r[1] for r in results)


def read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


def grpcpool_settings(args: argparse.Namespace) -> dict:
    settings = {
        "min_connections_per_target": args.connections,
        "max_connections_per_target": args.connections,
        "streams_per_connection": 1000,
    }
    if args.tls_ca:
        settings["tls_ca_file"] = args.tls_ca
    if args.server_name:
        settings["tls_server_name"] = args.server_name
    return settings


def grpcio_channels(args: argparse.Namespace, grpc_module: Any) -> list:
    """K channels to the target, each with a subchannel pool of its own (its own connection)."""
    address = urlparse(args.target).netloc
    options: list = [("grpc.use_local_subchannel_pool", 1)]
    credentials = None
    if urlparse(args.target).scheme == "https":
        import grpc

        credentials = grpc.ssl_channel_credentials(root_certificates=read(args.tls_ca))
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
    channels = []
    for _ in range(args.connections):
        if credentials is None:
            channels.append(grpc_module.insecure_channel(address, options=options))
        else:
            channels.append(grpc_module.secure_channel(address, credentials, options=options))
    return channels


def run_sync(args: argparse.Namespace, body: bytes) -> str:
    close: Callable[[], Any]
    if args.client == "grpcpool-sync":
        import grpcpool

        pool = grpcpool.Pool(**grpcpool_settings(args))
        target, method = args.target, args.method

        def call() -> None:
            pool.unary(target, method, body, timeout=CALL_TIMEOUT)

        close = pool.close
    else:
        import grpc

        channels = grpcio_channels(args, grpc)
        stubs = [
            channel.unary_unary(args.method, request_serializer=None, response_deserializer=None)
            for channel in channels
        ]
        rotation = itertools.cycle(stubs)

        def call() -> None:
            next(rotation)(body, timeout=CALL_TIMEOUT)

        def close() -> None:
            for channel in channels:
                channel.close()

    load_threads(call, min(args.concurrency, WARM_UP_CONCURRENCY_CAP), args.warmup)
    cpu_before, started = cpu_seconds(), time.monotonic()
    latencies, errors = load_threads(call, args.concurrency, args.seconds)
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    close()
    return report(latencies, errors, wall, cpu)


async def run_async(args: argparse.Namespace, body: bytes) -> str:
    if args.client == "grpcpool-aio":
        import grpcpool.aio

        pool = grpcpool.aio.Pool(**grpcpool_settings(args))
        target, method = args.target, args.method

        def call() -> Awaitable[Any]:
            return pool.unary(target, method, body, timeout=CALL_TIMEOUT)

        async def close() -> None:
            await pool.close()

    else:
        import grpc.aio

        channels = grpcio_channels(args, grpc.aio)
        stubs = [
            channel.unary_unary(args.method, request_serializer=None, response_deserializer=None)
            for channel in channels
        ]
        rotation = itertools.cycle(stubs)

        def call() -> Awaitable[Any]:
            return next(rotation)(body, timeout=CALL_TIMEOUT)

        async def close() -> None:
            for channel in channels:
                await channel.close()

    await load_tasks(call, min(args.concurrency, WARM_UP_CONCURRENCY_CAP), args.warmup)
    cpu_before, started = cpu_seconds(), time.monotonic()
    latencies, errors = await load_tasks(call, args.concurrency, args.seconds)
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    await close()
    return report(latencies, errors, wall, cpu)


def check(client: str) -> int:
    """Exit status 0 when `client` can run here, else 1 with the reason on stdout."""
    module = {"grpcpool-sync": "grpcpool", "grpcpool-aio": "grpcpool.aio"}.get(client, "grpc")
    try:
        __import__(module)
        if client == "grpc-aio":
            __import__("grpc.aio")
    except ImportError as error:
        print(f"{module} is not importable with {sys.executable}: {error}")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--target")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--payload", type=int, default=0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--method", default=INTEROP_UNARY)
    parser.add_argument("--tls-ca")
    parser.add_argument("--server-name")
    args = parser.parse_args()
    if args.check:
        return check(args.client)
    if not args.target:
        parser.error("--target is required")
    args.concurrency = max(args.concurrency, 1)
    args.connections = max(args.connections, 1)
    body = request(args.payload)
    if args.client.endswith("-sync"):
        line = run_sync(args, body)
    else:
        line = asyncio.run(run_async(args, body))
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
