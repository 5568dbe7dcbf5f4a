"""The one error map and the per-call options, checked on every call path (sync, asyncio,
grpcio stubs over grpcpool.Channel) and against grpcio itself where grpcio has an answer."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, List, Tuple

import grpc
import pytest

import grpcpool
import grpcpool.aio
from grpcpool import StatusCode, _native

from conftest import SEEN, wait_for

ECHO = "/gptest.Echo/Echo"
BIDI = "/gptest.Echo/Bidi"
SERVER_STREAM = "/gptest.Echo/ServerStream"
CLIENT_STREAM = "/gptest.Echo/ClientStream"

LIMIT = 1024


def oversized(pb: ModuleType) -> Any:
    return pb.EchoRequest(payload=b"x" * 2000)


# -- an oversized request: RESOURCE_EXHAUSTED on every path, as grpcio ----------------------


def test_grpcio_itself_fails_an_oversized_request_with_resource_exhausted(
    server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    address = server.removeprefix("http://")
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", LIMIT)]) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            pb2_grpc.EchoStub(channel).Echo(oversized(pb2), timeout=5.0)
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_oversized_request_sync(server: str, pb: ModuleType) -> None:
    with grpcpool.Pool(max_send_message_size=LIMIT) as pool:
        with pytest.raises(grpcpool.RpcError) as raised:
            pool.unary(server, ECHO, oversized(pb), timeout=5.0)
        assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
        assert "max_send_message_size" in raised.value.details()
        # The whole-response form returns it as the status, like any other.
        response = pool.unary_response(server, ECHO, oversized(pb), timeout=5.0)
        assert response.code is StatusCode.RESOURCE_EXHAUSTED
        with pool.acquire(server, timeout=5.0) as lease:
            with pytest.raises(grpcpool.RpcError) as raised:
                lease.unary(ECHO, oversized(pb), timeout=5.0)
            assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
            assert lease.unary_response(ECHO, oversized(pb)).code is StatusCode.RESOURCE_EXHAUSTED
            # The lease still works.
            assert lease.unary(ECHO, pb.EchoRequest(text="ok"), timeout=5.0, response_type=pb.EchoReply).text == "ok"
        assert pool.stats()["leases_out"] == 0


def test_oversized_request_on_sync_streams(server: str, pb: ModuleType) -> None:
    with grpcpool.Pool(max_send_message_size=LIMIT) as pool:
        with pool.stream(server, BIDI, timeout=5.0, response_type=pb.EchoReply) as stream:
            with pytest.raises(grpcpool.RpcError) as raised:
                stream.write(oversized(pb))
            assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
            # Nothing was sent; the call goes on.
            stream.write(pb.EchoRequest(text="small"))
            reply = stream.read()
            assert reply is not None and reply.text == "small"
        # Fed from an iterator, the refused request fails the call with its status.
        with pytest.raises(grpcpool.RpcError) as raised:
            pool.stream_unary(server, CLIENT_STREAM, [pb.EchoRequest(text="a"), oversized(pb)], timeout=5.0)
        assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
        bidi = pool.stream_stream(server, BIDI, iter([oversized(pb)]), timeout=5.0)
        with pytest.raises(grpcpool.RpcError) as raised:
            list(bidi)
        assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
        replies = pool.unary_stream(server, SERVER_STREAM, oversized(pb), timeout=5.0)
        with pytest.raises(grpcpool.RpcError) as raised:
            list(replies)
        assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
        assert wait_for(lambda: pool.stats()["leases_out"] == 0)


def test_oversized_request_through_grpcio_stubs(server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos
    with grpcpool.Pool(max_send_message_size=LIMIT) as pool:
        stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
        # As with a grpcio channel (first test): grpc.RpcError with RESOURCE_EXHAUSTED.
        with pytest.raises(grpc.RpcError) as raised:
            stub.Echo(oversized(pb2), timeout=5.0)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as raised:
            stub.ClientStream(iter([oversized(pb2)]), timeout=5.0)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.Bidi(iter([pb2.EchoRequest(text="a"), oversized(pb2)]), timeout=5.0))
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.ServerStream(oversized(pb2), timeout=5.0))
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_oversized_request_asyncio(server: str, pb: ModuleType) -> None:
    async def main() -> None:
        async with grpcpool.aio.Pool(max_send_message_size=LIMIT) as pool:
            with pytest.raises(grpcpool.RpcError) as raised:
                await pool.unary(server, ECHO, oversized(pb), timeout=5.0)
            assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
            response = await pool.unary_response(server, ECHO, oversized(pb), timeout=5.0)
            assert response.code is StatusCode.RESOURCE_EXHAUSTED
            async with await pool.acquire(server, timeout=5.0) as lease:
                with pytest.raises(grpcpool.RpcError) as raised:
                    await lease.unary(ECHO, oversized(pb), timeout=5.0)
                assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
            stream = await pool.stream(server, BIDI, timeout=5.0)
            async with stream:
                with pytest.raises(grpcpool.RpcError) as raised:
                    await stream.write(oversized(pb))
                assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(grpcpool.RpcError) as raised:
                await pool.stream_unary(server, CLIENT_STREAM, [oversized(pb)], timeout=5.0)
            assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
            replies = await pool.unary_stream(server, SERVER_STREAM, oversized(pb), timeout=5.0)
            with pytest.raises(grpcpool.RpcError) as raised:
                async for _ in replies:
                    pass
            assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED

    asyncio.run(main())


# -- a timeout of 0: already expired, DEADLINE_EXCEEDED without sending ---------------------
# (grpcio 1.85 itself sends such a call and may even get the reply: its deadline timer races
# the call; grpcpool gives the meaning core's call options define.)


def test_zero_timeout_is_already_expired(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    # A warm pool, so a connection is ready and a sent call would reach the server.
    pool.unary(server, ECHO, pb.EchoRequest(), timeout=5.0)
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.unary(server, ECHO, pb.EchoRequest(text="seen:zero-pool"), timeout=0)
    assert raised.value.code() is StatusCode.DEADLINE_EXCEEDED
    with pool.acquire(server, timeout=5.0) as lease:
        response = lease.unary_response(ECHO, pb.EchoRequest(text="seen:zero-lease"), timeout=0.0)
        assert response.code is StatusCode.DEADLINE_EXCEEDED
    stream = pool.stream(server, BIDI, timeout=0)
    with pytest.raises((grpcpool.RpcError, grpcpool.StreamClosedError)):
        stream.write(pb.EchoRequest(text="seen:zero-stream"))
    assert stream.finish().code is StatusCode.DEADLINE_EXCEEDED

    async def main() -> None:
        async with grpcpool.aio.Pool() as aio_pool:
            response = await aio_pool.unary_response(server, ECHO, pb.EchoRequest(text="seen:zero-aio"), timeout=0)
            assert response.code is StatusCode.DEADLINE_EXCEEDED

    asyncio.run(main())
    # A call with time left made it; none of the expired ones did.
    pool.unary(server, ECHO, pb.EchoRequest(text="seen:control"), timeout=5.0)
    time.sleep(0.2)
    assert sorted(text for text in SEEN if "zero" in text or "control" in text) == ["seen:control"]


# -- bools are not seconds ------------------------------------------------------------------


def test_a_bool_timeout_is_a_type_error_on_every_path(
    pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    request = pb2.EchoRequest()
    lease = pool.acquire(server, timeout=5.0)
    calls: List[Callable[[], Any]] = [
        lambda: pool.acquire(server, timeout=True),  # type: ignore[arg-type]
        lambda: pool.unary(server, ECHO, request, timeout=True),
        lambda: pool.unary_response(server, ECHO, request, timeout=False),
        lambda: pool.stream(server, BIDI, timeout=True),
        lambda: pool.unary_stream(server, SERVER_STREAM, request, timeout=True),
        lambda: lease.unary(ECHO, request, timeout=True),
        lambda: lease.stream(BIDI, timeout=True),
        lambda: pool.close(grace=True),
        lambda: pb2_grpc.EchoStub(grpcpool.Channel(pool, server)).Echo(request, timeout=True),
        lambda: list(pb2_grpc.EchoStub(grpcpool.Channel(pool, server)).ServerStream(request, timeout=True)),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="bool"):
            call()
    lease.release()

    async def main() -> None:
        async with grpcpool.aio.Pool() as aio_pool:
            with pytest.raises(TypeError, match="bool"):
                await aio_pool.acquire(server, timeout=True)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="bool"):
                await aio_pool.unary(server, ECHO, request, timeout=True)
            with pytest.raises(TypeError, match="bool"):
                await aio_pool.stream(server, BIDI, timeout=True)
            async with await aio_pool.acquire(server, timeout=5.0) as aio_lease:
                with pytest.raises(TypeError, match="bool"):
                    await aio_lease.unary(ECHO, request, timeout=True)
                with pytest.raises(TypeError, match="bool"):
                    aio_lease.stream(BIDI, timeout=True)

    asyncio.run(main())
    assert pool.stats()["leases_out"] == 0


# -- the other kinds ------------------------------------------------------------------------


def test_closed_pools_raise_pool_closed_error(server: str, pb: ModuleType) -> None:
    unused = grpcpool.Pool()
    assert unused.close() == 0  # nothing ever ran: no runtime is started to close it
    assert unused.closed and "closed" in repr(unused)
    with pytest.raises(grpcpool.PoolClosedError):
        unused.unary(server, ECHO, b"")

    async def main() -> None:
        pool = grpcpool.aio.Pool()
        await pool.unary(server, ECHO, pb.EchoRequest(), timeout=5.0)
        assert await pool.close() == 0
        assert pool.closed
        with pytest.raises(grpcpool.PoolClosedError):
            await pool.unary(server, ECHO, pb.EchoRequest())
        with pytest.raises(grpcpool.PoolClosedError):
            await pool.acquire(server)
        with pytest.raises(grpcpool.PoolClosedError):
            await pool.stream(server, BIDI)

    asyncio.run(main())


def test_exception_classes() -> None:
    # The native classes are the public ones, shown under grpcpool.
    assert grpcpool.StreamClosedError is _native.StreamClosedError
    assert grpcpool.PoolClosedError is _native.PoolClosedError
    for error in (grpcpool.StreamClosedError, grpcpool.PoolClosedError, grpcpool.LeaseReleasedError):
        assert issubclass(error, ValueError)
        assert error.__module__ == "grpcpool"


def test_a_stream_on_a_busy_lease_is_a_runtime_error(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    lease = pool.acquire(server, timeout=5.0)
    slow = threading.Thread(target=lambda: lease.unary(ECHO, pb.EchoRequest(sleep=0.5), timeout=5.0))
    slow.start()
    time.sleep(0.2)
    with pytest.raises(grpcpool.BusyError, match="in flight"):
        lease.stream(BIDI, timeout=5.0)
    slow.join()
    # Refused, the lease stayed the caller's, and opens the stream once the call is done.
    assert not lease.released
    with lease.stream(BIDI, timeout=5.0) as stream:
        assert not lease.released
        stream.done_writing()
        assert stream.finish().code is StatusCode.OK
    lease.release()
    assert wait_for(lambda: pool.stats()["leases_out"] == 0)


def test_a_stream_right_after_an_asyncio_call_on_the_lease_is_refused(server: str, pb: ModuleType) -> None:
    # The call marks the lease in use when it starts, not when the runtime first runs it, so
    # a stream opened right after is refused every time, however fast the call would be.
    async def main() -> None:
        async with grpcpool.aio.Pool() as pool:
            async with await pool.acquire(server, timeout=5.0) as lease:
                for _ in range(20):
                    calling = asyncio.ensure_future(lease.unary(ECHO, pb.EchoRequest(), timeout=5.0))
                    await asyncio.sleep(0)  # the task runs up to its await: the call started
                    with pytest.raises(RuntimeError, match="in flight"):
                        lease.stream(BIDI, timeout=5.0)
                    await calling
                stream = lease.stream(BIDI, timeout=5.0)
                await stream.done_writing()
                assert (await stream.finish()).code is StatusCode.OK
            assert pool.stats()["leases_out"] == 0

    asyncio.run(main())


# -- the per-call options are core's, on every call -----------------------------------------


def call_methods() -> Iterator[Tuple[str, Callable[..., Any]]]:
    for owner in (grpcpool.Pool, grpcpool.Lease, grpcpool.aio.Pool, grpcpool.aio.Lease):
        for name in ("unary", "unary_response", "stream", "unary_stream", "stream_unary", "stream_stream"):
            method = getattr(owner, name, None)
            if method is not None:
                yield f"{owner.__module__}.{owner.__qualname__}.{name}", method


def test_every_call_takes_every_call_option() -> None:
    options = _native.call_option_names()
    assert set(options) == {"timeout", "metadata", "wait_for_ready", "compression"}
    checked = 0
    for name, method in call_methods():
        parameters = inspect.signature(method).parameters
        missing = [option for option in options if option not in parameters]
        assert not missing, f"{name} lacks {missing}"
        checked += 1
    assert checked == 18


# -- grpcpool.aio ---------------------------------------------------------------------------


def test_import_grpcpool_alone_gives_grpcpool_aio(server: str) -> None:
    script = f"""
import asyncio, grpcpool
async def main():
    async with grpcpool.aio.Pool(worker_threads=1) as pool:
        print((await pool.unary_response({server!r}, "/gptest.Echo/Echo", b"", timeout=5.0)).code.name)
asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OK"]


def test_aio_leaked_leases_name_where_they_were_acquired(server: str) -> None:
    async def main() -> None:
        async with grpcpool.aio.Pool(lease_leak_threshold=0.05) as pool:
            lease = await pool.acquire(server, timeout=5.0)
            line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
            assert pool.leaked_leases() == ()
            await asyncio.sleep(0.15)
            ((target, site, held),) = pool.leaked_leases()
            assert target == server
            assert site == f"{__file__}:{line}"
            assert held >= 0.05
            lease.release()
            assert pool.leaked_leases() == ()

    asyncio.run(main())
