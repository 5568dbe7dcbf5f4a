"""grpcpool.Channel as grpcio's Channel: grpcio-generated stubs against a grpcio server, with
``.future()``, ``with_call``, ``grpc.intercept_channel`` (an auth interceptor the server
checks), ``close()``, and connectivity callbacks that see READY and TRANSIENT_FAILURE as the
server goes away."""

from __future__ import annotations

import concurrent.futures
import threading
from types import ModuleType
from typing import Any, Callable, Iterator, List, Tuple

import grpc
import pytest

import grpcpool
from conftest import AUTH_TOKEN, start_echo_server, wait_for


class _Auth(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the token to every call, as an auth interceptor does."""

    def __init__(self) -> None:
        self.calls = 0

    def _with_token(self, details: Any) -> Any:
        self.calls += 1
        metadata = list(details.metadata or []) + [("authorization", AUTH_TOKEN)]
        return _Details(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, method: str, timeout: Any, metadata: Any, credentials: Any, wait_for_ready: Any, compression: Any) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def test_channel_is_a_grpc_channel(pool: grpcpool.Pool, server: str) -> None:
    assert isinstance(grpcpool.Channel(pool, server), grpc.Channel)


def test_unary_future_gives_the_response_and_the_call(
    pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    future = stub.Echo.future(pb2.EchoRequest(text="later"), timeout=5.0, metadata=[("x-k", "v")])
    assert isinstance(future, grpc.Future) and isinstance(future, grpc.Call)
    done = threading.Event()
    seen: List[Any] = []
    future.add_done_callback(lambda call: (seen.append(call), done.set()))
    reply = future.result(timeout=5.0)
    assert reply.text == "later"
    assert done.wait(5.0) and seen == [future]
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None
    assert future.code() is grpc.StatusCode.OK
    assert ("x-echo-k", "v") in future.initial_metadata()
    assert ("x-trailer", "done") in future.trailing_metadata()


def test_unary_future_failure_and_timeout(pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos
    stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    failing = stub.Echo.future(pb2.EchoRequest(code=grpc.StatusCode.NOT_FOUND.value[0], details="gone"), timeout=5.0)
    error = failing.exception(timeout=5.0)
    assert isinstance(error, grpc.RpcError) and error.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as raised:
        failing.result()
    assert raised.value.details() == "gone"
    slow = stub.Echo.future(pb2.EchoRequest(sleep=0.5), timeout=5.0)
    with pytest.raises(grpc.FutureTimeoutError):
        slow.result(timeout=0.01)
    assert slow.result(timeout=5.0).text == ""


def test_unary_future_cancel_cancels_the_call(pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos
    stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    future = stub.Echo.future(pb2.EchoRequest(sleep=2.0), timeout=10.0)
    assert wait_for(lambda: pool.stats()["streams_in_flight"] == 1)
    assert future.cancel()
    assert future.cancelled() and future.done()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    assert future.code() is grpc.StatusCode.CANCELLED
    # The engine dropped the call: its slot is free long before the server's sleep ends.
    assert wait_for(lambda: pool.stats()["streams_in_flight"] == 0, timeout=1.5)
    assert not future.cancel()


def test_stream_unary_future(pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = protos
    stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    future = stub.ClientStream.future(iter([pb2.EchoRequest(text=t) for t in "abc"]), timeout=5.0)
    assert future.result(timeout=5.0).text == "a,b,c"
    assert future.code() is grpc.StatusCode.OK


def test_intercept_channel_adds_the_token_the_server_checks(
    pool: grpcpool.Pool, auth_server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    bare = pb2_grpc.EchoStub(grpcpool.Channel(pool, auth_server))
    with pytest.raises(grpc.RpcError) as denied:
        bare.Echo(pb2.EchoRequest(text="x"), timeout=5.0)
    assert denied.value.code() is grpc.StatusCode.UNAUTHENTICATED

    auth = _Auth()
    stub = pb2_grpc.EchoStub(grpc.intercept_channel(grpcpool.Channel(pool, auth_server), auth))
    assert stub.Echo(pb2.EchoRequest(text="u"), timeout=5.0).text == "u"
    reply, call = stub.Echo.with_call(pb2.EchoRequest(text="w"), timeout=5.0)
    assert reply.text == "w" and call.code() is grpc.StatusCode.OK
    assert stub.Echo.future(pb2.EchoRequest(text="f"), timeout=5.0).result().text == "f"
    streamed = [reply.text for reply in stub.ServerStream(pb2.EchoRequest(text="s", count=3), timeout=5.0)]
    assert streamed == ["s", "s", "s"]
    assert stub.ClientStream(iter([pb2.EchoRequest(text="c")]), timeout=5.0).text == "c"
    bidi = [reply.text for reply in stub.Bidi(iter([pb2.EchoRequest(text="b1"), pb2.EchoRequest(text="b2")]), timeout=5.0)]
    assert bidi == ["b1", "b2"]
    assert auth.calls == 6
    # A failing call through the interceptor is still grpcio's error.
    with pytest.raises(grpc.RpcError) as failed:
        stub.Echo(pb2.EchoRequest(code=grpc.StatusCode.ABORTED.value[0], details="no"), timeout=5.0)
    assert failed.value.code() is grpc.StatusCode.ABORTED


def test_close_refuses_new_calls_and_leaves_the_pool_open(
    pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    channel = grpcpool.Channel(pool, server)
    stub = pb2_grpc.EchoStub(channel)
    assert stub.Echo(pb2.EchoRequest(text="before"), timeout=5.0).text == "before"
    channel.close()
    with pytest.raises(ValueError, match="closed channel"):
        stub.Echo(pb2.EchoRequest(text="after"), timeout=5.0)
    with pytest.raises(ValueError):
        list(stub.ServerStream(pb2.EchoRequest(count=1), timeout=5.0))
    other = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    assert other.Echo(pb2.EchoRequest(text="others"), timeout=5.0).text == "others"


def _recorder() -> Tuple[List[Any], Callable[[Any], None], threading.Condition]:
    states: List[Any] = []
    changed = threading.Condition()

    def record(state: Any) -> None:
        with changed:
            states.append(state)
            changed.notify_all()

    return states, record, changed


def _wait_state(states: List[Any], changed: threading.Condition, wanted: Any, timeout: float = 10.0) -> bool:
    with changed:
        return changed.wait_for(lambda: wanted in states, timeout=timeout)


def test_subscribe_sees_ready_then_transient_failure_then_ready(protos: Tuple[ModuleType, ModuleType]) -> None:
    srv, port = start_echo_server(protos)
    target = f"http://127.0.0.1:{port}"
    with grpcpool.Pool(worker_threads=2, backoff_initial=0.05, backoff_max=0.4) as pool:
        channel = grpcpool.Channel(pool, target)
        states, record, changed = _recorder()
        channel.subscribe(record)
        assert _wait_state(states, changed, grpc.ChannelConnectivity.IDLE)
        assert pool.connectivity(target) is grpcpool.Connectivity.IDLE
        channel.subscribe(record, try_to_connect=True)
        assert _wait_state(states, changed, grpc.ChannelConnectivity.READY), states
        srv.stop(grace=None).wait()
        assert _wait_state(states, changed, grpc.ChannelConnectivity.TRANSIENT_FAILURE), states
        assert pool.connectivity(target) is grpcpool.Connectivity.TRANSIENT_FAILURE
        with changed:
            states.clear()
        back, _ = start_echo_server(protos, port)
        try:
            assert _wait_state(states, changed, grpc.ChannelConnectivity.READY), states
            channel.unsubscribe(record)
            with changed:
                states.clear()
        finally:
            back.stop(grace=None)
        channel.close()
    assert pool.connectivity(target) is grpcpool.Connectivity.SHUTDOWN
    assert grpc.ChannelConnectivity.TRANSIENT_FAILURE not in states  # unsubscribed: nothing more


def test_wait_for_connectivity_change_times_out_with_the_same_state(pool: grpcpool.Pool, unused_target: str) -> None:
    state = pool.wait_for_connectivity_change(unused_target, grpcpool.Connectivity.IDLE, timeout=0.05)
    assert state is grpcpool.Connectivity.IDLE
    with pytest.raises(ValueError):
        pool.connectivity("nope://x")


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as made:
        yield made


def test_many_futures_at_once(
    pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType], executor: concurrent.futures.ThreadPoolExecutor
) -> None:
    pb2, pb2_grpc = protos
    stub = pb2_grpc.EchoStub(grpcpool.Channel(pool, server))
    futures = [stub.Echo.future(pb2.EchoRequest(text=str(index)), timeout=10.0) for index in range(200)]
    assert [future.result(timeout=10.0).text for future in futures] == [str(index) for index in range(200)]
