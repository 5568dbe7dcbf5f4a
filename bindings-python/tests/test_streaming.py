"""Streaming calls (server, client, bidirectional) against a real grpcio server: the sync and
asyncio APIs, grpcio-generated streaming stubs over grpcpool.Channel, cancel, deadlines."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
from concurrent import futures
from types import ModuleType
from typing import Any, AsyncIterator, Iterator, List, Tuple

import grpc
import pytest

import grpcpool
import grpcpool.aio
from grpcpool import StatusCode

from conftest import wait_for

SERVER_STREAM = "/gptest.Echo/ServerStream"
CLIENT_STREAM = "/gptest.Echo/ClientStream"
BIDI = "/gptest.Echo/Bidi"
ECHO = "/gptest.Echo/Echo"


def test_server_streaming_iterates_every_reply_then_ok(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    stream = pool.unary_stream(
        server, SERVER_STREAM, pb.EchoRequest(text="s", count=5), timeout=5.0, response_type=pb.EchoReply
    )
    replies = list(stream)
    assert [reply.seen_metadata[0] for reply in replies] == ["0", "1", "2", "3", "4"]
    assert all(reply.text == "s" for reply in replies)
    assert stream.initial_metadata() == (("x-kind", "server-stream"),)
    response = stream.finish()
    assert response.code is StatusCode.OK
    assert ("x-sent", "5") in response.trailers
    assert stream.code() is StatusCode.OK
    assert not stream.is_active()
    assert pool.stats()["leases_out"] == 0


def test_server_streaming_error_raises_after_the_replies(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    stream = pool.unary_stream(
        server, SERVER_STREAM, pb.EchoRequest(count=2, code=8, details="too many"), timeout=5.0
    )
    got: List[bytes] = []
    with pytest.raises(grpcpool.RpcError) as raised:
        for message in stream:
            got.append(message)
    assert len(got) == 2 and all(isinstance(message, bytes) for message in got)
    assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.details() == "too many"
    assert ("x-sent", "2") in raised.value.trailing_metadata()


def test_client_streaming_sends_every_request(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    requests = (pb.EchoRequest(text=str(index), payload=b"x" * 50_000) for index in range(20))
    reply = pool.stream_unary(server, CLIENT_STREAM, requests, timeout=10.0, response_type=pb.EchoReply)
    assert reply.text == ",".join(str(index) for index in range(20))
    assert reply.seen_metadata == ["1000000"]
    # Nothing sent: an empty aggregate, still OK.
    assert pool.stream_unary(server, CLIENT_STREAM, [], timeout=5.0, response_type=pb.EchoReply).text == ""
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.stream_unary(server, CLIENT_STREAM, [pb.EchoRequest(code=3, details="bad one")], timeout=5.0)
    assert raised.value.code() is StatusCode.INVALID_ARGUMENT


def test_bidirectional_ping_pong_on_a_lease(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    lease = pool.acquire(server, timeout=5.0)
    with lease.stream(BIDI, timeout=5.0, metadata=[("x-who", "pingpong")], response_type=pb.EchoReply) as stream:
        # The stream uses the lease's slot; the lease stays the caller's.
        assert not lease.released
        for index, size in enumerate([27_182, 8, 1_828, 45_904]):
            stream.write(pb.EchoRequest(text=str(index), payload=b"\0" * size))
            reply = stream.read()
            assert reply is not None and reply.text == str(index) and len(reply.payload) == size
        stream.done_writing()
        assert stream.read() is None
        assert stream.finish().code is StatusCode.OK
        with pytest.raises(grpcpool.StreamClosedError):
            stream.write(b"")
    lease.release()
    assert pool.stats()["leases_out"] == 0


def test_a_stream_on_a_lease_leaves_the_lease_usable(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    lease = pool.acquire(server, timeout=5.0)
    address = lease.address
    with lease.stream(BIDI, timeout=5.0, response_type=pb.EchoReply) as stream:
        stream.write(pb.EchoRequest(text="on the lease"))
        reply = stream.read()
        assert reply is not None and reply.text == "on the lease"
        # While the stream runs, another stream on the lease is refused (core's Busy).
        with pytest.raises(RuntimeError, match="in flight"):
            lease.stream(BIDI, timeout=5.0)
        stream.done_writing()
        assert stream.finish().code is StatusCode.OK
    # The stream is over: the lease is usable again, on the same connection.
    assert not lease.released and lease.address == address
    reply = lease.unary(ECHO, pb.EchoRequest(text="after"), timeout=5.0, response_type=pb.EchoReply)
    assert reply.text == "after"
    assert pool.stats()["leases_out"] == 1
    lease.release()
    assert lease.released
    assert pool.stats()["leases_out"] == 0
    # Released while its stream runs, the slot returns when the stream ends.
    lease = pool.acquire(server, timeout=5.0)
    stream = lease.stream(BIDI, timeout=5.0)
    lease.release()
    with pytest.raises(grpcpool.LeaseReleasedError):
        lease.unary(ECHO, b"", timeout=5.0)
    assert pool.stats()["leases_out"] == 1
    stream.write(pb.EchoRequest(text="still here"))
    assert stream.read() is not None
    stream.done_writing()
    assert stream.finish().code is StatusCode.OK
    assert wait_for(lambda: pool.stats()["leases_out"] == 0)


def test_a_second_send_while_one_waits_on_flow_control_is_refused(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    # The smallest HTTP/2 windows, and nobody reads the echoes: the server soon stops taking
    # requests, so a send waits on flow control; a second send meanwhile is refused (core's
    # Busy), never queued.
    chunk = pb.EchoRequest(payload=b"x" * (32 * 1024))
    with grpcpool.Pool(initial_stream_window_size=65535, initial_connection_window_size=65535) as small:
        stream = small.stream(server, BIDI, timeout=20.0)
        with futures.ThreadPoolExecutor(1) as sender:
            blocked = None
            for _ in range(400):
                sending = sender.submit(stream.write, chunk)
                try:
                    sending.result(timeout=0.3)
                except futures.TimeoutError:
                    blocked = sending
                    break
            assert blocked is not None, "400 sends never waited on flow control"
            with pytest.raises(grpcpool.BusyError, match="already waiting"):
                stream.write(b"")
            # The refusal left the waiting send alone; a cancel wakes it with the call's end.
            assert not blocked.done()
            stream.cancel()
            error = blocked.exception(timeout=5.0)
        assert isinstance(error, (grpcpool.StreamClosedError, grpcpool.RpcError)), error
        if isinstance(error, grpcpool.RpcError):
            assert error.code() is StatusCode.CANCELLED
        assert stream.finish().code is StatusCode.CANCELLED
        assert wait_for(lambda: small.stats()["leases_out"] == 0)


def test_asyncio_second_send_while_one_waits_on_flow_control_is_refused(server: str, pb: ModuleType) -> None:
    chunk = pb.EchoRequest(payload=b"x" * (32 * 1024))

    async def main() -> None:
        async with grpcpool.aio.Pool(
            initial_stream_window_size=65535, initial_connection_window_size=65535
        ) as small:
            stream = await small.stream(server, BIDI, timeout=20.0)
            blocked = None
            for _ in range(400):
                sending = asyncio.ensure_future(stream.write(chunk))
                # asyncio.wait, not wait_for: a timeout must not cancel the waiting send.
                done, _ = await asyncio.wait({sending}, timeout=0.3)
                if not done:
                    blocked = sending
                    break
                sending.result()
            assert blocked is not None, "400 sends never waited on flow control"
            with pytest.raises(grpcpool.BusyError, match="already waiting"):
                await stream.write(b"")
            assert not blocked.done()
            stream.cancel()
            with pytest.raises((grpcpool.StreamClosedError, grpcpool.RpcError)) as raised:
                await asyncio.wait_for(blocked, 5.0)
            if isinstance(raised.value, grpcpool.RpcError):
                assert raised.value.code() is StatusCode.CANCELLED
            assert (await stream.finish()).code is StatusCode.CANCELLED

    asyncio.run(main())


def test_bidirectional_from_an_iterator_while_reading(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    requests = (pb.EchoRequest(text=str(index)) for index in range(300))
    stream = pool.stream_stream(server, BIDI, requests, timeout=10.0, response_type=pb.EchoReply)
    assert [reply.text for reply in stream] == [str(index) for index in range(300)]
    assert stream.code() is StatusCode.OK


def test_a_failing_request_iterator_ends_the_call_as_unknown(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    def requests() -> Iterator[Any]:
        yield pb.EchoRequest(text="one")
        raise RuntimeError("ran dry")

    stream = pool.stream_stream(server, BIDI, requests(), timeout=5.0)
    with pytest.raises(grpcpool.RpcError) as raised:
        list(stream)
    assert raised.value.code() is StatusCode.UNKNOWN
    assert "ran dry" in raised.value.details()
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_one_thread_writes_while_another_reads(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    stream = pool.stream(server, BIDI, timeout=10.0, response_type=pb.EchoReply)
    received: List[str] = []

    def reader() -> None:
        for reply in stream:
            received.append(reply.text)

    thread = threading.Thread(target=reader)
    thread.start()
    for index in range(200):
        stream.write(pb.EchoRequest(text=str(index)))
    stream.done_writing()
    thread.join(10.0)
    assert received == [str(index) for index in range(200)]
    # Two readers at once is refused, never undefined.
    stream2 = pool.stream(server, BIDI, timeout=5.0)

    def read_until_cancelled() -> None:
        with pytest.raises(grpcpool.RpcError):
            stream2.read()

    blocked = threading.Thread(target=read_until_cancelled)
    blocked.start()
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="already waiting"):
        stream2.read()
    stream2.cancel()
    blocked.join(5.0)
    assert not blocked.is_alive()


def test_cancel_wakes_a_blocked_read_and_frees_the_slot(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    stream = pool.stream(server, BIDI, timeout=30.0)
    outcome: List[Any] = []
    def read() -> None:
        try:
            outcome.append(stream.read())
        except grpcpool.RpcError as error:
            outcome.append(error.code())

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.2)
    assert stream.is_active()
    assert stream.cancel()
    thread.join(5.0)
    assert outcome == [StatusCode.CANCELLED]
    assert stream.code() is StatusCode.CANCELLED
    assert not stream.cancel()
    assert wait_for(lambda: pool.stats()["leases_out"] == 0)


def test_an_interrupted_read_abandons_only_that_wait(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    # A signal handler's exception (not KeyboardInterrupt, which the stream turns into a
    # cancel) ends the blocking read; the call goes on, and the next read is not refused.
    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        for index in range(10):
            stream = pool.stream(server, BIDI, timeout=10.0, response_type=pb.EchoReply)
            # The echo comes after 0.3 s; the read waiting for it is interrupted at 0.05 s.
            stream.write(pb.EchoRequest(text=str(index), sleep=0.3))
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(Interrupted):
                stream.read()
            assert stream.is_active()
            reply = stream.read()
            assert reply is not None and reply.text == str(index)
            stream.done_writing()
            assert stream.finish().code is StatusCode.OK
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_deadline_ends_a_stream(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    stream = pool.unary_stream(server, SERVER_STREAM, pb.EchoRequest(count=100, interval=0.05), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(grpcpool.RpcError) as raised:
        for _ in stream:
            pass
    assert raised.value.code() is StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5.0
    assert stream.time_remaining() == 0.0


def test_dropping_an_unfinished_stream_cancels_it(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    stream = pool.stream(server, BIDI, timeout=30.0)
    stream.write(pb.EchoRequest(text="x"))
    assert pool.stats()["leases_out"] == 1
    del stream
    gc.collect()
    assert wait_for(lambda: pool.stats()["leases_out"] == 0)


def test_streaming_bad_input(pool: grpcpool.Pool, server: str, unused_target: str, pb: ModuleType) -> None:
    with pytest.raises(ValueError):
        pool.stream(server, "no-slash")
    with pytest.raises(ValueError):
        pool.stream("nonsense", BIDI)
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.stream(unused_target, BIDI, timeout=2.0)
    assert raised.value.code() is StatusCode.UNAVAILABLE
    stream = pool.stream(server, BIDI, timeout=5.0)
    with pytest.raises(TypeError):
        stream.write("text")  # type: ignore[arg-type]
    stream.cancel()
    with pytest.raises(grpcpool.RpcError) as raised:
        stream.write(b"")
    assert raised.value.code() is StatusCode.CANCELLED
    lease = pool.acquire(server, timeout=5.0)
    with pytest.raises(ValueError):
        lease.stream("no-slash")
    assert not lease.released  # bad input leaves the lease with the caller
    lease.release()
    with pytest.raises(grpcpool.LeaseReleasedError):
        lease.stream(BIDI)
    unimplemented = pool.unary_stream(server, "/gptest.Echo/Nope", b"", timeout=5.0)
    with pytest.raises(grpcpool.RpcError) as raised:
        list(unimplemented)
    assert raised.value.code() is StatusCode.UNIMPLEMENTED
    pool.close()
    with pytest.raises(grpcpool.PoolClosedError):
        pool.stream(server, BIDI)


def test_grpcio_streaming_stubs_over_a_grpcpool_channel(
    pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    with grpcpool.Channel(pool, server) as channel:
        stub = pb2_grpc.EchoStub(channel)
        replies = stub.ServerStream(pb2.EchoRequest(text="s", count=3), timeout=5.0)
        assert [reply.seen_metadata[0] for reply in replies] == ["0", "1", "2"]
        assert replies.code() is grpc.StatusCode.OK

        reply = stub.ClientStream(iter([pb2.EchoRequest(text="a"), pb2.EchoRequest(text="b")]), timeout=5.0)
        assert reply.text == "a,b"
        reply, call = stub.ClientStream.with_call(iter([pb2.EchoRequest(text="c")]), timeout=5.0)
        assert reply.text == "c" and call.code() is grpc.StatusCode.OK

        replies = stub.Bidi(iter([pb2.EchoRequest(text=str(index)) for index in range(10)]), timeout=5.0)
        assert [reply.text for reply in replies] == [str(index) for index in range(10)]

        # Failures are grpc.RpcError with grpc.StatusCode, as with a grpcio channel.
        failing = stub.ServerStream(pb2.EchoRequest(count=1, code=7, details="nope"), timeout=5.0)
        with pytest.raises(grpc.RpcError) as raised:
            list(failing)
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as raised:
            stub.ClientStream(iter([pb2.EchoRequest(code=6, details="dup")]), timeout=5.0)
        assert raised.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert wait_for(lambda: pool.stats()["leases_out"] == 0)


def test_asyncio_streaming(server: str, pb: ModuleType) -> None:
    async def requests(count: int) -> AsyncIterator[Any]:
        for index in range(count):
            await asyncio.sleep(0)
            yield pb.EchoRequest(text=str(index))

    async def main() -> None:
        async with grpcpool.aio.Pool(worker_threads=2) as pool:
            stream = await pool.unary_stream(
                server, SERVER_STREAM, pb.EchoRequest(text="a", count=4), timeout=5.0, response_type=pb.EchoReply
            )
            assert [reply.seen_metadata[0] async for reply in stream] == ["0", "1", "2", "3"]
            assert await stream.initial_metadata() == (("x-kind", "server-stream"),)
            assert ("x-sent", "4") in await stream.trailing_metadata()

            reply = await pool.stream_unary(server, CLIENT_STREAM, requests(50), timeout=5.0, response_type=pb.EchoReply)
            assert reply.text == ",".join(str(index) for index in range(50))

            bidi = await pool.stream_stream(server, BIDI, requests(100), timeout=5.0, response_type=pb.EchoReply)
            assert [reply.text async for reply in bidi] == [str(index) for index in range(100)]
            assert await bidi.code() is StatusCode.OK

            # Ping-pong on a lease, writing and reading in turn.
            lease = await pool.acquire(server, timeout=5.0)
            async with lease.stream(BIDI, timeout=5.0, response_type=pb.EchoReply) as pingpong:
                for index in range(5):
                    await pingpong.write(pb.EchoRequest(text=str(index)))
                    answer = await pingpong.read()
                    assert answer is not None and answer.text == str(index)
                await pingpong.done_writing()
                assert await pingpong.read() is None
            # The stream is over and the lease is still the caller's.
            assert not lease.released
            again = await lease.unary(ECHO, pb.EchoRequest(text="again"), timeout=5.0, response_type=pb.EchoReply)
            assert again.text == "again"
            lease.release()

            # A failing stream raises where the replies end.
            failing = await pool.unary_stream(server, SERVER_STREAM, pb.EchoRequest(count=1, code=10, details="x"))
            with pytest.raises(grpcpool.RpcError) as raised:
                async for _ in failing:
                    pass
            assert raised.value.code() is StatusCode.ABORTED

            # Cancelling the task that awaits a read cancels the call and frees its slot.
            idle = await pool.stream(server, BIDI, timeout=30.0)
            reading = asyncio.ensure_future(idle.read())
            await asyncio.sleep(0.2)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            assert await idle.code() is StatusCode.CANCELLED
            for _ in range(100):
                if pool.stats()["leases_out"] == 0:
                    break
                await asyncio.sleep(0.02)
            assert pool.stats()["leases_out"] == 0

    asyncio.run(main())


def test_asyncio_many_streams_at_once(server: str, pb: ModuleType) -> None:
    async def one(pool: grpcpool.aio.Pool, index: int) -> int:
        stream = await pool.unary_stream(server, SERVER_STREAM, pb.EchoRequest(count=3), timeout=20.0)
        return len([message async for message in stream])

    async def main() -> None:
        async with grpcpool.aio.Pool(worker_threads=2, max_connections_per_target=2) as pool:
            counts = await asyncio.gather(*(one(pool, index) for index in range(200)))
            assert counts == [3] * 200
            assert pool.stats()["leases_out"] == 0

    asyncio.run(main())


@pytest.fixture
def identity_only_server() -> Iterator[str]:
    """A grpcio echo server (raw bytes) with every compression but identity disabled: a
    gzip-compressed request fails there, which shows the client really compressed it."""
    handler = grpc.method_handlers_generic_handler(
        "gptest.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}
    )
    srv = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.compression_enabled_algorithms_bitset", 1)],
    )
    srv.add_generic_rpc_handlers((handler,))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.stop(grace=None)


def test_gzip_compression_on_unary_and_streams(
    pool: grpcpool.Pool, server: str, identity_only_server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    big = pb2.EchoRequest(text="gz", payload=b"a" * 300_000)
    echo = "/gptest.Echo/Echo"
    reply = pool.unary(server, echo, big, timeout=5.0, compression="gzip", response_type=pb2.EchoReply)
    assert reply.payload == big.payload
    streamed = pool.stream_unary(
        server, CLIENT_STREAM, [big, big], timeout=5.0, compression="gzip", response_type=pb2.EchoReply
    )
    assert streamed.seen_metadata == ["600000"]
    # A server that refuses gzip refuses these calls: they really were compressed.
    assert pool.unary(identity_only_server, echo, b"abc", timeout=5.0) == b"abc"
    refused = pool.unary_response(identity_only_server, echo, b"abc", timeout=5.0, compression="gzip")
    assert refused.code is StatusCode.UNIMPLEMENTED, refused
    assert "gzip" in refused.details.lower() or "compression" in refused.details.lower(), refused.details
    with pytest.raises(ValueError, match="compression"):
        pool.unary(server, echo, b"", compression="brotli")
    # grpcio's per-call compression argument works through grpcpool.Channel.
    stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    assert stub.Echo(big, timeout=5.0, compression=grpc.Compression.Gzip).payload == big.payload
    assert [r.text for r in stub.Bidi(iter([big]), timeout=5.0, compression=grpc.Compression.Gzip)] == ["gz"]
    with pytest.raises(NotImplementedError):
        stub.Echo(big, compression=grpc.Compression.Deflate)
    raw_stub = grpcpool.Channel(pool, identity_only_server).unary_unary(echo)
    with pytest.raises(grpc.RpcError) as raised:
        raw_stub(b"abc", timeout=5.0, compression=grpc.Compression.Gzip)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
