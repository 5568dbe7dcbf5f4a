"""grpcpool's sync and asyncio APIs against grpcio's, same grpcio server, one run.

The server runs in a child process (so the client's CPU is its own); each client makes
closed-loop unary calls from N threads (sync) or N concurrent tasks (asyncio: grpcpool.aio
against grpc.aio) for a fixed time, in alternating rounds. Prints QPS and client CPU
microseconds per call (getrusage), medians over the rounds, and the ratios issue 4 sets
targets for. Run with the venv bindings-python/test.sh makes:

    target/python-venv/bin/python bench/python/sync_vs_grpcio.py [--seconds 2] [--rounds 3]
        [--server sync|aio] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import threading
import time
from concurrent import futures
from typing import Any, Callable, Dict, List, Tuple

import grpc

import grpcpool

METHOD = "/bench.Echo/Unary"
PAYLOAD = b"0123456789abcdef0123456789abcdef"


def serve(port_queue: "multiprocessing.Queue[int]", kind: str = "sync", cpu: int = -1) -> None:
    """A grpcio server echoing raw bytes, until killed: grpcio's thread-pool server (`sync`) or
    its asyncio server (`aio`, less CPU per call), pinned to `cpu` when it is not -1."""
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    if kind == "aio":
        asyncio.run(serve_aio(port_queue))
        return
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_queue.put(port)
    server.wait_for_termination()


async def serve_aio(port_queue: "multiprocessing.Queue[int]") -> None:
    import grpc.aio

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_queue.put(port)
    await server.wait_for_termination()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load(call: Callable[[], None], threads: int, seconds: float) -> Tuple[float, float]:
    """Runs `call` in `threads` closed loops; returns (calls per second, CPU µs per call)."""
    stop = time.monotonic() + seconds
    counts: List[int] = [0] * threads

    def worker(index: int) -> None:
        done = 0
        while time.monotonic() < stop and done < 10_000_000:
            call()
            done += 1
        counts[index] = done

    started, cpu_before = time.monotonic(), cpu_seconds()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    calls = sum(counts)
    return calls / wall, cpu * 1e6 / max(calls, 1)


async def load_async(call: Callable[[], "asyncio.Future[Any]"], tasks: int, seconds: float) -> Tuple[float, float]:
    """Runs `call` in `tasks` closed loops on this event loop; returns (calls/s, CPU µs/call)."""
    stop = time.monotonic() + seconds
    counts: List[int] = [0] * tasks

    async def worker(index: int) -> None:
        done = 0
        while time.monotonic() < stop and done < 10_000_000:
            await call()
            done += 1
        counts[index] = done

    started, cpu_before = time.monotonic(), cpu_seconds()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    calls = sum(counts)
    return calls / wall, cpu * 1e6 / max(calls, 1)


async def compare_async(target: str, port: int, tasks: int, seconds: float, rounds: int) -> None:
    import grpc.aio

    import grpcpool.aio

    pool = grpcpool.aio.Pool()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    grpcio_call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    clients: Dict[str, Callable[[], Any]] = {
        "grpcpool.aio": lambda: pool.unary(target, METHOD, PAYLOAD, timeout=30.0),
        "grpc.aio": lambda: grpcio_call(PAYLOAD, timeout=30.0),
    }
    results: Dict[str, List[Tuple[float, float]]] = {}
    for call in clients.values():
        await load_async(call, 16, 0.3)
    for _ in range(rounds):
        for name, call in clients.items():
            results.setdefault(name, []).append(await load_async(call, tasks, seconds))
    for name, measured in results.items():
        qps = statistics.median(r[0] for r in measured)
        cpu = statistics.median(r[1] for r in measured)
        print(f"{name:<14} tasks={tasks:<4} {qps:>9.0f} qps  cpu {cpu:>7.1f} us/call  ({len(measured)} rounds)")
    ours, theirs = results["grpcpool.aio"], results["grpc.aio"]
    print(
        f"tasks={tasks}: qps grpcpool.aio/grpc.aio "
        f"{statistics.median(r[0] for r in ours) / statistics.median(r[0] for r in theirs):.2f}x, "
        f"cpu per call {statistics.median(r[1] for r in ours) / statistics.median(r[1] for r in theirs):.2f}"
    )
    await pool.close()
    await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,32")
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument(
        "--server",
        choices=("sync", "aio"),
        default="sync",
        help="grpcio's thread-pool server, or its asyncio server (less CPU per call)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 1, this client on CPU 0 (needs 2 CPUs)",
    )
    args = parser.parse_args()

    pinned = args.pin and len(os.sched_getaffinity(0)) >= 2
    queue: "multiprocessing.Queue[int]" = multiprocessing.Queue()
    server = multiprocessing.Process(
        target=serve, args=(queue, args.server, 1 if pinned else -1), daemon=True
    )
    server.start()
    if pinned:
        os.sched_setaffinity(0, {0})
    print(f"server: grpcio {args.server}{', pinned: server CPU 1, client CPU 0' if pinned else ''}")
    target_port = queue.get(timeout=30)
    target = f"http://127.0.0.1:{target_port}"

    pool = grpcpool.Pool()
    channel = grpc.insecure_channel(f"127.0.0.1:{target_port}")
    grpcio_call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)

    clients: Dict[str, Callable[[], None]] = {
        "grpcpool sync": lambda: pool.unary(target, METHOD, PAYLOAD, timeout=10.0) and None,
        "grpcio sync": lambda: grpcio_call(PAYLOAD, timeout=10.0) and None,
    }
    for call in clients.values():  # warm up: connections, caches
        load(call, 1, 0.3)

    results: Dict[Tuple[str, int], List[Tuple[float, float]]] = {}
    for threads in (int(n) for n in args.threads.split(",")):
        for _ in range(args.rounds):
            for name, call in clients.items():
                results.setdefault((name, threads), []).append(load(call, threads, args.seconds))
    for (name, threads), rounds in results.items():
        qps = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        print(f"{name:<14} threads={threads:<3} {qps:>9.0f} qps  cpu {cpu:>7.1f} us/call  ({len(rounds)} rounds)")
    for threads in sorted({t for _, t in results}):
        ours, theirs = results[("grpcpool sync", threads)], results[("grpcio sync", threads)]
        qps = statistics.median(r[0] for r in ours) / statistics.median(r[0] for r in theirs)
        cpu = statistics.median(r[1] for r in ours) / statistics.median(r[1] for r in theirs)
        print(f"threads={threads}: qps grpcpool/grpcio {qps:.2f}x, cpu per call grpcpool/grpcio {cpu:.2f}")
    pool.close()
    channel.close()
    asyncio.run(compare_async(target, target_port, args.tasks, args.seconds, args.rounds))
    server.kill()


if __name__ == "__main__":
    main()
