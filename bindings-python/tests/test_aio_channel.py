"""grpcpool.aio.Channel as grpc.aio's Channel: grpcio-generated stubs on asyncio against a
grpcio server, all four kinds, with grpc.aio interceptors (an auth one the server checks),
cancel, deadlines, metadata, errors as grpc.aio.AioRpcError, and connectivity."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any, AsyncIterator, Awaitable, Callable, List, Tuple

import grpc
import pytest

import grpcpool
import grpcpool.aio
from conftest import AUTH_TOKEN, start_echo_server


def run(main: Callable[[grpcpool.aio.Pool], Awaitable[None]]) -> None:
    async def with_pool() -> None:
        async with grpcpool.aio.Pool(worker_threads=2, backoff_initial=0.05, backoff_max=0.4) as pool:
            await main(pool)

    asyncio.run(with_pool())


def _with_token(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", AUTH_TOKEN)
    return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class _AuthUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, seen: List[str]) -> None:
        self.seen = seen

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.seen.append(f"uu {details.method.decode()}")
        return await continuation(_with_token(details), request)


class _AuthStreams(
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, seen: List[str]) -> None:
        self.seen = seen

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.seen.append("us")
        return await continuation(_with_token(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self.seen.append("su")
        return await continuation(_with_token(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self.seen.append("ss")
        return await continuation(_with_token(details), requests)


class _Answers(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Answers by itself without calling on (a cache, say), as grpc.aio allows."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return self.reply


async def _requests(pb2: ModuleType, texts: str) -> AsyncIterator[Any]:
    for text in texts:
        yield pb2.EchoRequest(text=text)


def test_all_four_kinds_with_generated_stubs(server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos

    async def main(pool: grpcpool.aio.Pool) -> None:
        async with grpcpool.aio.Channel(pool, server) as channel:
            assert isinstance(channel, grpc.aio.Channel)
            stub = pb2_grpc.EchoStub(channel)
            call = stub.Echo(pb2.EchoRequest(text="hi"), timeout=5.0, metadata=(("x-k", "v"),))
            assert (await call).text == "hi"
            assert await call.code() is grpc.StatusCode.OK
            assert (await call.initial_metadata())["x-echo-k"] == "v"
            assert (await call.trailing_metadata())["x-trailer"] == "done"
            assert call.done() and not call.cancelled()

            streamed = stub.ServerStream(pb2.EchoRequest(text="s", count=3), timeout=5.0)
            assert [reply.text async for reply in streamed] == ["s", "s", "s"]
            assert (await streamed.trailing_metadata())["x-sent"] == "3"
            assert (await streamed.initial_metadata())["x-kind"] == "server-stream"

            read_one = stub.ServerStream(pb2.EchoRequest(text="r", count=1), timeout=5.0)
            assert (await read_one.read()).text == "r"
            assert await read_one.read() is grpc.aio.EOF

            assert (await stub.ClientStream(_requests(pb2, "abc"), timeout=5.0)).text == "a,b,c"
            assert (await stub.ClientStream(iter([pb2.EchoRequest(text="i")]), timeout=5.0)).text == "i"
            written = stub.ClientStream(timeout=5.0)
            await written.write(pb2.EchoRequest(text="w1"))
            await written.write(pb2.EchoRequest(text="w2"))
            await written.done_writing()
            assert (await written).text == "w1,w2"

            bidi = stub.Bidi(timeout=5.0)
            for text in ("x", "y"):
                await bidi.write(pb2.EchoRequest(text=text))
                assert (await bidi.read()).text == text
            await bidi.done_writing()
            assert await bidi.read() is grpc.aio.EOF
            assert await bidi.code() is grpc.StatusCode.OK
            fed = stub.Bidi(_requests(pb2, "pq"), timeout=5.0)
            assert [reply.text async for reply in fed] == ["p", "q"]

    run(main)


def test_errors_are_aio_rpc_errors(server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos

    async def main(pool: grpcpool.aio.Pool) -> None:
        stub = pb2_grpc.EchoStub(grpcpool.aio.Channel(pool, server))
        code = grpc.StatusCode.NOT_FOUND.value[0]
        call = stub.Echo(pb2.EchoRequest(code=code, details="gone"), timeout=5.0)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND and raised.value.details() == "gone"
        assert isinstance(raised.value, grpcpool.RpcError)
        assert await call.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as streamed:
            async for _ in stub.ServerStream(pb2.EchoRequest(count=2, code=code, details="late"), timeout=5.0):
                pass
        assert streamed.value.code() is grpc.StatusCode.NOT_FOUND
        bidi = stub.Bidi(timeout=5.0)
        await bidi.write(pb2.EchoRequest(code=grpc.StatusCode.ABORTED.value[0], details="no"))
        with pytest.raises(grpc.aio.AioRpcError) as aborted:
            await bidi.read()
        assert aborted.value.code() is grpc.StatusCode.ABORTED
        # A deadline the server overruns.
        slow = stub.Echo(pb2.EchoRequest(sleep=1.0), timeout=0.05)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await slow
        assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    run(main)


def test_cancel_ends_the_call_on_the_engine(server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos

    async def main(pool: grpcpool.aio.Pool) -> None:
        stub = pb2_grpc.EchoStub(grpcpool.aio.Channel(pool, server))
        call = stub.Echo(pb2.EchoRequest(sleep=2.0), timeout=10.0)
        await asyncio.sleep(0.1)
        assert pool.stats()["streams_in_flight"] == 1
        assert call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert call.cancelled()
        assert await call.code() is grpc.StatusCode.CANCELLED
        for _ in range(100):
            if pool.stats()["streams_in_flight"] == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.stats()["streams_in_flight"] == 0

        streaming = stub.Bidi(timeout=10.0)
        await streaming.write(pb2.EchoRequest(text="one"))
        assert (await streaming.read()).text == "one"
        assert streaming.cancel()
        assert streaming.cancelled() and streaming.done()
        assert await streaming.code() is grpc.StatusCode.CANCELLED
        assert not streaming.cancel()

    run(main)


def test_interceptors_add_the_token_the_server_checks(auth_server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos

    async def main(pool: grpcpool.aio.Pool) -> None:
        bare = pb2_grpc.EchoStub(grpcpool.aio.Channel(pool, auth_server))
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await bare.Echo(pb2.EchoRequest(text="x"), timeout=5.0)
        assert denied.value.code() is grpc.StatusCode.UNAUTHENTICATED

        seen: List[str] = []
        channel = grpcpool.aio.Channel(pool, auth_server, interceptors=[_AuthUnary(seen), _AuthStreams(seen)])
        stub = pb2_grpc.EchoStub(channel)
        call = stub.Echo(pb2.EchoRequest(text="u"), timeout=5.0)
        assert (await call).text == "u"
        assert await call.code() is grpc.StatusCode.OK
        assert [reply.text async for reply in stub.ServerStream(pb2.EchoRequest(text="s", count=2), timeout=5.0)] == ["s", "s"]
        assert (await stub.ClientStream(_requests(pb2, "ab"), timeout=5.0)).text == "a,b"
        written = stub.ClientStream(timeout=5.0)
        await written.write(pb2.EchoRequest(text="w"))
        await written.done_writing()
        assert (await written).text == "w"
        bidi = stub.Bidi(_requests(pb2, "xy"), timeout=5.0)
        assert [reply.text async for reply in bidi] == ["x", "y"]
        assert seen == ["uu /gptest.Echo/Echo", "us", "su", "su", "ss"]

        failing = stub.Echo(pb2.EchoRequest(code=grpc.StatusCode.ABORTED.value[0], details="no"), timeout=5.0)
        with pytest.raises(grpc.aio.AioRpcError):
            await failing
        assert await failing.code() is grpc.StatusCode.ABORTED

    run(main)


def test_an_interceptor_may_answer_itself(server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos

    async def main(pool: grpcpool.aio.Pool) -> None:
        cached = pb2.EchoReply(text="from the cache")
        stub = pb2_grpc.EchoStub(grpcpool.aio.Channel(pool, server, interceptors=[_Answers(cached)]))
        call = stub.Echo(pb2.EchoRequest(text="never sent"), timeout=5.0)
        assert (await call).text == "from the cache"
        assert await call.code() is grpc.StatusCode.OK
        assert pool.stats()["calls_started"] == 0

    run(main)


def test_connectivity_and_close(protos: Tuple[ModuleType, ModuleType]) -> None:
    srv, port = start_echo_server(protos)
    target = f"http://127.0.0.1:{port}"
    pb2, pb2_grpc = protos

    async def main(pool: grpcpool.aio.Pool) -> None:
        channel = grpcpool.aio.Channel(pool, target)
        assert channel.get_state() is grpc.ChannelConnectivity.IDLE
        await asyncio.wait_for(channel.channel_ready(), 10.0)
        assert channel.get_state() is grpc.ChannelConnectivity.READY
        srv.stop(grace=None).wait()
        await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 10.0)
        state = channel.get_state()
        for _ in range(20):
            if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                break
            await asyncio.wait_for(channel.wait_for_state_change(state), 10.0)
            state = channel.get_state()
        assert state is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        await channel.close()
        with pytest.raises(RuntimeError):
            pb2_grpc.EchoStub(channel).Echo(pb2.EchoRequest(), timeout=1.0)

    run(main)
