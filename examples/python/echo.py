"""grpcpool from Python: unary and streaming calls through one pool, sync and asyncio.

Run it against grpcpool's echo server (any gRPC server with these raw-bytes methods works):

    cargo run -p grpcpool-testserver --bin grpcpool-echo-server -- --port 50051 &
    python examples/python/echo.py http://127.0.0.1:50051
"""

import asyncio
import sys

import grpcpool
import grpcpool.aio

UNARY = "/grpcpool.test.Echo/Unary"
SERVER_STREAM = "/grpcpool.test.Echo/ServerStream"
BIDI = "/grpcpool.test.Echo/Bidi"


def sync_calls(target: str) -> None:
    with grpcpool.Pool(max_connections_per_target=2) as pool:
        # One-shot: acquire, call, release.
        print("unary:", pool.unary(target, UNARY, b"hello", timeout=2.0))
        # Several calls on one lease share its connection.
        with pool.acquire(target, timeout=1.0) as lease:
            response = lease.unary_response(UNARY, b"again", metadata=[("x-echo-who", "example")])
            print("unary with metadata:", response.code.name, response.headers)
        # Server streaming: the echo server repeats the message x-count times.
        replies = pool.unary_stream(target, SERVER_STREAM, b"tick", metadata=[("x-count", "3")], timeout=2.0)
        print("server streaming:", list(replies))
        # Bidirectional: requests go out from an iterator while replies come back.
        print("bidirectional:", list(pool.stream_stream(target, BIDI, [b"a", b"b", b"c"], timeout=2.0)))
        # A failed call raises grpcpool.RpcError, shaped like grpcio's.
        try:
            pool.unary(target, UNARY, b"", metadata=[("x-status-code", "5"), ("x-status-message", "nope")])
        except grpcpool.RpcError as error:
            print("error:", error.code().name, error.details())
        print("stats:", {key: value for key, value in pool.stats().items() if key != "targets"})


async def async_calls(target: str) -> None:
    async with grpcpool.aio.Pool() as pool:
        replies = await asyncio.gather(*(pool.unary(target, UNARY, str(n).encode()) for n in range(5)))
        print("asyncio, 5 at once:", replies)
        stream = await pool.unary_stream(target, SERVER_STREAM, b"tock", metadata=[("x-count", "2")])
        print("asyncio streaming:", [reply async for reply in stream])


if __name__ == "__main__":
    address = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:50051"
    sync_calls(address)
    asyncio.run(async_calls(address))
