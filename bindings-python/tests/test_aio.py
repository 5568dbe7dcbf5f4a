"""grpcpool.aio against a real grpcio server: awaited calls, 1,000 at once, task cancellation."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

import pytest

import grpcpool
import grpcpool.aio
from grpcpool import StatusCode

from conftest import wait_for

ECHO = "/gptest.Echo/Echo"


def test_awaited_calls_on_a_lease_and_one_shot(server: str, pb: ModuleType) -> None:
    async def main() -> None:
        async with grpcpool.aio.Pool(worker_threads=2) as pool:
            async with await pool.acquire(server, timeout=5.0) as lease:
                reply = await lease.unary(ECHO, pb.EchoRequest(text="aio"), timeout=5.0, response_type=pb.EchoReply)
                assert reply.text == "aio"
                response = await lease.unary_response(ECHO, pb.EchoRequest(code=5, details="gone"), timeout=5.0)
                assert response.code is StatusCode.NOT_FOUND
            assert lease.released
            reply = await pool.unary(server, ECHO, pb.EchoRequest(text="one-shot"), response_type=pb.EchoReply)
            assert reply.text == "one-shot"
            with pytest.raises(grpcpool.RpcError) as raised:
                await pool.unary(server, ECHO, pb.EchoRequest(code=9, details="not now"), timeout=5.0)
            assert raised.value.code() is StatusCode.FAILED_PRECONDITION
            with pytest.raises(TypeError):
                await pool.unary(server, ECHO, "text")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await pool.unary("nonsense", ECHO, b"")

    asyncio.run(main())


def test_a_thousand_concurrent_calls(server: str, pb: ModuleType) -> None:
    async def main() -> None:
        async with grpcpool.aio.Pool(worker_threads=2) as pool:
            requests = [pb.EchoRequest(text=str(index)) for index in range(1000)]
            replies = await asyncio.gather(
                *(pool.unary(server, ECHO, request, timeout=30.0, response_type=pb.EchoReply) for request in requests)
            )
            assert [reply.text for reply in replies] == [str(index) for index in range(1000)]
            assert pool.stats()["calls_succeeded"] == 1000

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_rpc(server: str, pb: ModuleType) -> None:
    async def main() -> None:
        async with grpcpool.aio.Pool(worker_threads=2) as pool:
            task = asyncio.ensure_future(pool.unary(server, ECHO, pb.EchoRequest(sleep=5.0), timeout=30.0))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < 1.0
            # The slot came back and the pool keeps working.
            assert wait_for(lambda: pool.stats()["leases_out"] == 0)
            assert await pool.unary(server, ECHO, pb.EchoRequest(text="after"), response_type=pb.EchoReply)

            # asyncio.wait_for's timeout cancels the same way.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pool.unary(server, ECHO, pb.EchoRequest(sleep=5.0)), 0.2)

    asyncio.run(main())
