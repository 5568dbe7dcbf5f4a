"""grpcpool's synchronous API against a real grpcio server."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import List, Tuple

import grpc
import pytest

import grpcpool
from grpcpool import StatusCode

from conftest import wait_for

ECHO = "/gptest.Echo/Echo"


def test_unary_with_protobuf_messages(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    with pool.acquire(server, timeout=5.0) as lease:
        reply = lease.unary(ECHO, pb.EchoRequest(text="hello"), timeout=5.0, response_type=pb.EchoReply)
        assert isinstance(reply, pb.EchoReply)
        assert reply.text == "hello"
        # Without response_type the encoded body comes back.
        raw = lease.unary(ECHO, pb.EchoRequest(text="again").SerializeToString(), timeout=5.0)
        assert isinstance(raw, bytes)
        assert pb.EchoReply.FromString(raw).text == "again"
        assert lease.target == server
        assert lease.address.startswith("127.0.0.1:")
    assert lease.released


def test_one_shot_unary_and_large_payload(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    reply = pool.unary(
        server, ECHO, pb.EchoRequest(text="one", payload=payload), timeout=10.0, response_type=pb.EchoReply
    )
    assert reply.text == "one"
    assert reply.payload == payload
    # bytearray and memoryview requests are accepted too.
    body = pool.unary(server, ECHO, bytearray(pb.EchoRequest(text="ba").SerializeToString()))
    assert pb.EchoReply.FromString(body).text == "ba"
    body = pool.unary(server, ECHO, memoryview(pb.EchoRequest(text="mv").SerializeToString()))
    assert pb.EchoReply.FromString(body).text == "mv"


def test_metadata_both_ways(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    metadata = [("x-token", "abc 123"), ("x-raw-bin", b"\x00\x01\xfe\xff"), ("x-token", "second")]
    with pool.acquire(server) as lease:
        response = lease.unary_response(ECHO, pb.EchoRequest(text="md"), timeout=5.0, metadata=metadata)
    assert response.ok and response.code is StatusCode.OK
    reply = response.decode(pb.EchoReply)
    # Values of one key keep their order (the wire groups a key's values together).
    assert sorted(reply.seen_metadata) == ["x-raw-bin=0001feff", "x-token=abc 123", "x-token=second"]
    assert [seen for seen in reply.seen_metadata if seen.startswith("x-token")] == [
        "x-token=abc 123",
        "x-token=second",
    ]
    assert ("x-echo-token", "abc 123") in response.headers
    assert ("x-echo-token", "second") in response.headers
    assert ("x-trailer", "done") in response.trailers
    assert ("x-raw-bin", b"\x00\x01\xfe\xff") in response.trailers
    # The one-shot call carries metadata too.
    reply = pool.unary(server, ECHO, pb.EchoRequest(), metadata=(("x-a", "b"),), response_type=pb.EchoReply)
    assert list(reply.seen_metadata) == ["x-a=b"]


NON_OK = [code for code in StatusCode if code is not StatusCode.OK]


@pytest.mark.parametrize("code", NON_OK, ids=[code.name for code in NON_OK])
def test_status_codes_raise_rpc_error(
    pool: grpcpool.Pool, server: str, pb: ModuleType, code: StatusCode
) -> None:
    request = pb.EchoRequest(code=code.number, details=f"failed with {code.name}")
    with pool.acquire(server) as lease:
        with pytest.raises(grpcpool.RpcError) as raised:
            lease.unary(ECHO, request, timeout=5.0, metadata=[("x-why", "test")])
        error = raised.value
        assert error.code() is code
        assert error.code().name == grpc.StatusCode[code.name].name
        assert error.code().value == grpc.StatusCode[code.name].value
        assert error.details() == f"failed with {code.name}"
        assert ("x-trailer", "done") in error.trailing_metadata()
        assert ("x-echo-why", "test") in error.initial_metadata()
        assert code.name in str(error)
        # The full-response variant returns the status instead of raising.
        response = lease.unary_response(ECHO, request, timeout=5.0)
        assert response.code is code and not response.ok
        assert response.details == f"failed with {code.name}"
        with pytest.raises(grpcpool.RpcError):
            response.raise_for_status()
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.unary(server, ECHO, request, timeout=5.0)
    assert raised.value.code() is code


def test_unimplemented_method(pool: grpcpool.Pool, server: str) -> None:
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.unary(server, "/gptest.Echo/Missing", b"", timeout=5.0)
    assert raised.value.code() is StatusCode.UNIMPLEMENTED


def test_deadline_exceeded(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    with pool.acquire(server) as lease:
        started = time.monotonic()
        with pytest.raises(grpcpool.RpcError) as raised:
            lease.unary(ECHO, pb.EchoRequest(sleep=2.0), timeout=0.2)
        elapsed = time.monotonic() - started
        assert raised.value.code() is StatusCode.DEADLINE_EXCEEDED
        assert elapsed < 1.5, elapsed
        # The lease is still good after a deadline.
        assert lease.unary(ECHO, pb.EchoRequest(text="ok"), timeout=5.0, response_type=pb.EchoReply).text == "ok"
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.unary(server, ECHO, pb.EchoRequest(sleep=2.0), timeout=0.2)
    assert raised.value.code() is StatusCode.DEADLINE_EXCEEDED


def test_32_threads_at_once(server: str, pb: ModuleType) -> None:
    calls_per_thread = 25
    barrier = threading.Barrier(32)
    with grpcpool.Pool(max_connections_per_target=4) as pool:
        shared_lease = pool.acquire(server)

        def work(index: int) -> List[str]:
            barrier.wait()
            texts = []
            for call in range(calls_per_thread):
                text = f"{index}-{call}"
                if call % 2:
                    reply = pool.unary(server, ECHO, pb.EchoRequest(text=text), timeout=10.0, response_type=pb.EchoReply)
                elif call % 4 == 0:
                    reply = shared_lease.unary(ECHO, pb.EchoRequest(text=text), timeout=10.0, response_type=pb.EchoReply)
                else:
                    with pool.acquire(server, timeout=10.0) as lease:
                        reply = lease.unary(ECHO, pb.EchoRequest(text=text), timeout=10.0, response_type=pb.EchoReply)
                texts.append(reply.text)
            return texts

        with ThreadPoolExecutor(max_workers=32) as executor:
            results = list(executor.map(work, range(32)))
        shared_lease.release()
        for index, texts in enumerate(results):
            assert texts == [f"{index}-{call}" for call in range(calls_per_thread)]
        stats = pool.stats()
        assert stats["calls_succeeded"] == 32 * calls_per_thread
        assert stats["leases_out"] == 0
        assert stats["calls_failed"] == {}


def test_gil_is_released_while_waiting(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    # 16 calls that each take 0.5 s on the server finish together only if the waits overlap.
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as executor:
        replies = list(
            executor.map(
                lambda i: pool.unary(server, ECHO, pb.EchoRequest(text=str(i), sleep=0.5), timeout=10.0),
                range(16),
            )
        )
    assert len(replies) == 16
    assert time.monotonic() - started < 4.0
    # And a Python thread keeps running while a call waits.
    ticks = 0
    stop = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    pool.unary(server, ECHO, pb.EchoRequest(sleep=0.3), timeout=5.0)
    stop.set()
    thread.join()
    assert ticks > 20


def test_stats(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    pool.unary(server, ECHO, pb.EchoRequest())
    with pytest.raises(grpcpool.RpcError):
        pool.unary(server, ECHO, pb.EchoRequest(code=5))
    stats = pool.stats()
    assert stats["calls_started"] == 2
    assert stats["calls_succeeded"] == 1
    assert stats["calls_failed"] == {"NOT_FOUND": 1}
    (target,) = stats["targets"]
    assert target["target"] == server
    assert target["connections"]["ready"] >= 1


def test_unreachable_target(pool: grpcpool.Pool, unused_target: str, pb: ModuleType) -> None:
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.acquire(unused_target, timeout=2.0)
    assert raised.value.code() is StatusCode.UNAVAILABLE
    with pytest.raises(grpcpool.RpcError) as raised:
        pool.unary(unused_target, ECHO, pb.EchoRequest(), timeout=2.0)
    assert raised.value.code() is StatusCode.UNAVAILABLE


def test_garbage_collected_lease_is_released_and_counted_as_a_leak(pool: grpcpool.Pool, server: str) -> None:
    lease = pool.acquire(server)
    assert pool.stats()["leases_out"] == 1
    del lease
    gc.collect()
    assert wait_for(lambda: pool.stats()["leases_out"] == 0)
    assert pool.stats()["leaks_detected"] == 1
    # A lease released properly is no leak.
    with pool.acquire(server):
        pass
    gc.collect()
    assert pool.stats()["leaks_detected"] == 1


class NotAMessage:
    pass


class BadMessage:
    def SerializeToString(self) -> str:
        return "text"


def test_bad_input_raises_clear_exceptions(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    request = pb.EchoRequest(text="x")
    with pool.acquire(server) as lease:
        with pytest.raises(TypeError, match="not str"):
            lease.unary(ECHO, "a str request")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="not str"):
            pool.unary(server, ECHO, "a str request")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="SerializeToString"):
            lease.unary(ECHO, NotAMessage())  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="did not return bytes"):
            lease.unary(ECHO, BadMessage())  # type: ignore[call-overload]
        with pytest.raises(ValueError, match="invalid method"):
            lease.unary("no-slash", request)
        with pytest.raises(ValueError, match="invalid metadata"):
            lease.unary(ECHO, request, metadata=[("Upper-Case", "v")])
        with pytest.raises(ValueError, match="invalid metadata"):
            lease.unary(ECHO, request, metadata=[("grpc-timeout", "1S")])
        with pytest.raises(ValueError, match="invalid metadata"):
            lease.unary(ECHO, request, metadata=[("x-text", "line\nbreak")])
        with pytest.raises(TypeError, match="str or bytes"):
            lease.unary(ECHO, request, metadata=[("x-n", 5)])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="pairs"):
            lease.unary(ECHO, request, metadata="x-a")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            lease.unary(ECHO, request, timeout=-1.0)
        with pytest.raises(ValueError, match="timeout"):
            lease.unary(ECHO, request, timeout=float("nan"))
        with pytest.raises(TypeError):
            lease.unary(ECHO, request, timeout="1")  # type: ignore[call-overload]
        # The lease still works after all of that.
        assert lease.unary(ECHO, request, response_type=pb.EchoReply).text == "x"
    for target in ["", "127.0.0.1:50051", "ftp://host:1", "http://", "http://host:notaport"]:
        with pytest.raises(ValueError, match="invalid target"):
            pool.acquire(target)
        with pytest.raises(ValueError, match="invalid target"):
            pool.unary(target, ECHO, request)


def test_tls_material_from_files(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="TLS"):
        grpcpool.Pool(tls_ca_file=garbage)
    with pytest.raises(ValueError, match="TLS"):
        grpcpool.Pool(tls_client_cert=str(garbage), tls_client_key=garbage)
    with pytest.raises(ValueError, match="not both"):
        grpcpool.Pool(tls_ca_pem=b"x", tls_ca_file=garbage)


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_connections_per_target"):
        grpcpool.Pool(max_connections_per_target=0)
    with pytest.raises(ValueError, match="min_connections_per_target"):
        grpcpool.Pool(max_connections_per_target=1, min_connections_per_target=2)
    with pytest.raises(ValueError, match="connect_timeout"):
        grpcpool.Pool(connect_timeout=-1.0)
    with pytest.raises(TypeError):
        grpcpool.Pool(max_connections_per_target=True)
    with pytest.raises(TypeError):
        grpcpool.Pool(bogus=1)  # type: ignore[call-arg]
    # A negative count is a value out of range (it used to be OverflowError).
    with pytest.raises(ValueError, match="max_connections_per_target must be >= 0"):
        grpcpool.Pool(max_connections_per_target=-1)
    with pytest.raises(ValueError, match="TLS"):
        grpcpool.Pool(tls_ca_pem=b"not a certificate")
    with pytest.raises(FileNotFoundError):
        grpcpool.Pool(tls_ca_file="/nonexistent/ca.pem")
    with pytest.raises(TypeError, match="PEM bytes or a file path"):
        grpcpool.Pool(tls_client_cert=123)  # type: ignore[arg-type]
    # Every setting is accepted.
    pool = grpcpool.Pool(
        max_connections_per_target=8,
        min_connections_per_target=0,
        streams_per_connection=10,
        connect_timeout=1.5,
        keepalive_time=0,
        keepalive_timeout=5.0,
        keepalive_while_idle=True,
        tcp_nodelay=True,
        tcp_keepalive=30.0,
        idle_timeout=10.0,
        max_connection_age=0,
        acquire_timeout=2.0,
        lease_leak_threshold=30.0,
        initial_stream_window_size=1 << 20,
        initial_connection_window_size=1 << 22,
        max_send_message_size=1 << 20,
        max_receive_message_size=1 << 20,
        dns_refresh_interval=10.0,
        worker_threads=1,
        tls_server_name="example.com",
    )
    pool.close()


def test_message_size_limits(server: str, pb: ModuleType) -> None:
    with grpcpool.Pool(max_send_message_size=4000, max_receive_message_size=1000) as pool:
        # An oversized request fails as grpcio fails it: RESOURCE_EXHAUSTED, never sent
        # (test_errors.py checks every call path).
        with pytest.raises(grpcpool.RpcError, match="max_send_message_size") as raised:
            pool.unary(server, ECHO, b"x" * 5000)
        assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpcpool.RpcError) as raised:
            # A small request whose reply is over the receive limit.
            pool.unary(server, ECHO, pb.EchoRequest(payload=b"x" * 900, text="y" * 200))
        assert raised.value.code() is StatusCode.RESOURCE_EXHAUSTED


def test_closed_pool(server: str, pb: ModuleType) -> None:
    pool = grpcpool.Pool()
    lease = pool.acquire(server)
    assert pool.unary(server, ECHO, pb.EchoRequest(text="before"), response_type=pb.EchoReply).text == "before"
    lease.release()
    assert pool.close(grace=1.0) == 0
    assert pool.closed
    assert pool.close() == 0  # twice is fine
    with pytest.raises(grpcpool.PoolClosedError, match="closed"):
        pool.acquire(server)
    with pytest.raises(grpcpool.PoolClosedError):
        pool.unary(server, ECHO, pb.EchoRequest())
    with pytest.raises(ValueError):  # PoolClosedError is a ValueError, like a closed file's
        pool.unary(server, ECHO, pb.EchoRequest())
    assert isinstance(pool.stats(), dict)


def test_lease_of_a_closed_pool(server: str, pb: ModuleType) -> None:
    pool = grpcpool.Pool()
    lease = pool.acquire(server)
    assert pool.close(grace=0.1) == 1  # the lease still held its slot
    with pytest.raises(grpcpool.PoolClosedError):
        lease.unary(ECHO, pb.EchoRequest())
    lease.release()


def test_released_lease(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    lease = pool.acquire(server)
    lease.release()
    lease.release()  # twice is fine
    assert lease.released
    assert lease.address == ""
    with pytest.raises(grpcpool.LeaseReleasedError, match="released"):
        lease.unary(ECHO, pb.EchoRequest())
    with pytest.raises(grpcpool.LeaseReleasedError):
        lease.unary_response(ECHO, pb.EchoRequest())
    with pool.acquire(server) as held:
        pass
    with pytest.raises(grpcpool.LeaseReleasedError):
        held.unary(ECHO, pb.EchoRequest())
    assert pool.stats()["leases_out"] == 0


def test_pool_context_manager_and_repr(server: str) -> None:
    with grpcpool.Pool() as pool:
        with pool.acquire(server) as lease:
            assert server in repr(lease)
        assert "released" in repr(lease)
    assert pool.closed
    assert "closed" in repr(pool)


def test_status_code_names_match_grpc() -> None:
    assert [code.name for code in StatusCode] == [code.name for code in grpc.StatusCode]
    assert [code.value for code in StatusCode] == [code.value for code in grpc.StatusCode]
    assert StatusCode.from_number(5) is StatusCode.NOT_FOUND
    assert StatusCode.from_number(99) is StatusCode.UNKNOWN


INTERRUPTED_CALL = """
import os, signal, sys, threading, time
import grpcpool

target, request = sys.argv[1], bytes.fromhex(sys.argv[2])
# Python's own SIGINT handler, even when the test runs with SIGINT ignored (a background job
# of a shell without job control inherits SIG_IGN, and Python then installs no handler).
signal.signal(signal.SIGINT, signal.default_int_handler)
pool = grpcpool.Pool()
with pool.acquire(target, timeout=5.0) as lease:
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    try:
        lease.unary("/gptest.Echo/Echo", request, timeout=30.0)
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.2f}")
    # The lease and the pool still work after the interrupted call.
    lease.unary("/gptest.Echo/Echo", b"", timeout=5.0)
pool.close()
print("ok")
"""


def test_ctrl_c_interrupts_a_blocking_call(server: str, pb: ModuleType) -> None:
    request = pb.EchoRequest(sleep=10.0).SerializeToString().hex()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CALL, server, request],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["interrupted", "after"], result.stdout
    assert float(lines[2]) < 2.0
    assert lines[-1] == "ok"
    assert time.monotonic() - started < 8.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_gives_the_child_a_working_pool(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    # The parent has a running pool, a live connection and a held lease when it forks.
    assert pool.unary(server, ECHO, pb.EchoRequest(text="parent"), response_type=pb.EchoReply).text == "parent"
    parents_lease = pool.acquire(server)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
        child = os.fork()
    if child == 0:
        outcome = "ok"
        try:
            reply = pool.unary(server, ECHO, pb.EchoRequest(text="child"), timeout=5.0, response_type=pb.EchoReply)
            assert reply.text == "child", reply
            with pool.acquire(server, timeout=5.0) as lease:
                assert lease.unary(ECHO, pb.EchoRequest(text="c2"), timeout=5.0, response_type=pb.EchoReply).text == "c2"
            try:
                parents_lease.unary(ECHO, pb.EchoRequest(), timeout=1.0)
                outcome = "the parent's lease made a call in the child"
            except grpcpool.PoolClosedError as error:
                assert "parent" in str(error), error
            parents_lease.release()
            assert pool.stats()["calls_succeeded"] == 2
        except BaseException as error:  # report anything to the parent
            outcome = f"{type(error).__name__}: {error}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    _, status = os.waitpid(child, 0)
    assert outcome == "ok"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # The parent's pool and lease are untouched.
    assert parents_lease.unary(ECHO, pb.EchoRequest(text="p2"), timeout=5.0, response_type=pb.EchoReply).text == "p2"
    parents_lease.release()
    assert pool.stats()["leases_out"] == 0


def test_grpcio_generated_stub_over_a_grpcpool_channel(
    pool: grpcpool.Pool, server: str, protos: Tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = protos
    with grpcpool.Channel(pool, server) as channel:
        stub = pb2_grpc.EchoStub(channel)
        reply = stub.Echo(pb2.EchoRequest(text="stub"), timeout=5.0, metadata=[("x-who", "stub")])
        assert isinstance(reply, pb2.EchoReply)
        assert reply.text == "stub"
        assert "x-who=stub" in reply.seen_metadata

        reply, call = stub.Echo.with_call(pb2.EchoRequest(text="call"), timeout=5.0)
        assert reply.text == "call"
        assert call.code() is grpc.StatusCode.OK
        assert ("x-trailer", "done") in call.trailing_metadata()

        # Code written for grpcio catches grpc.RpcError and reads its status the same way.
        with pytest.raises(grpc.RpcError) as raised:
            stub.Echo(pb2.EchoRequest(code=5, details="no such thing"), timeout=5.0)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        assert raised.value.details() == "no such thing"
        assert isinstance(raised.value, grpcpool.RpcError)

        with pytest.raises(ValueError):
            stub.Echo(pb2.EchoRequest(), credentials=object())
    # The channel borrowed the pool: the pool still works.
    assert pool.unary(server, ECHO, pb2.EchoRequest(text="after"), response_type=pb2.EchoReply).text == "after"
    assert pool.stats()["leases_out"] == 0


def test_grpcpool_log_sends_engine_events_to_python_logging(server: str) -> None:
    script = f"""
import logging, sys, time
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelno, record.getMessage()))
logging.getLogger("grpcpool").addHandler(Keep())
logging.getLogger("grpcpool").setLevel(1)
import grpcpool
with grpcpool.Pool(worker_threads=1) as pool:
    pool.unary({server!r}, "/gptest.Echo/Echo", b"", timeout=5.0)
deadline = time.monotonic() + 5
while not records and time.monotonic() < deadline:
    time.sleep(0.01)
print(len(records), records[0] if records else None)
sys.exit(0 if records and all(name == "grpcpool" for name, _, _ in records) else 1)
"""
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    # Silent by default: nothing reaches Python's logging without GRPCPOOL_LOG.
    assert quiet.returncode == 1, quiet.stdout + quiet.stderr
    assert quiet.stdout.startswith("0 "), quiet.stdout
    env = dict(os.environ, GRPCPOOL_LOG="grpcpool_core=debug")
    loud = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert loud.returncode == 0, loud.stdout + loud.stderr
    assert "'grpcpool', 10, 'grpcpool_core::" in loud.stdout, loud.stdout


def test_static_targets_follow_the_endpoints_set(pool: grpcpool.Pool, server: str, pb: ModuleType) -> None:
    request = pb.EchoRequest(text="pushed")
    with pytest.raises(grpcpool.RpcError) as before:
        pool.unary("static:///py-echo", ECHO, request, timeout=5.0)
    assert before.value.code() == StatusCode.UNAVAILABLE
    assert "set_endpoints" in before.value.details()
    pool.set_endpoints("py-echo", [server.removeprefix("http://")])
    reply = pool.unary("static:///py-echo", ECHO, request, timeout=5.0, response_type=pb.EchoReply)
    assert reply.text == "pushed"
    pool.set_endpoints("py-echo", [])
    with pytest.raises(grpcpool.RpcError) as none:
        pool.unary("static:///py-echo", ECHO, request, timeout=5.0)
    assert none.value.code() == StatusCode.UNAVAILABLE
    with pytest.raises(ValueError, match="needs a port"):
        pool.set_endpoints("py-echo", ["127.0.0.1"])
    with pytest.raises(ValueError, match="no endpoint name"):
        pool.set_endpoints("no name", ["127.0.0.1:1"])
    with pytest.raises(TypeError):
        pool.set_endpoints("py-echo", "127.0.0.1:1")
    # Weighted: (endpoint, weight), 1 or more.
    pool.set_endpoints("py-echo", [(server.removeprefix("http://"), 3)])
    reply = pool.unary("static:///py-echo", ECHO, request, timeout=5.0, response_type=pb.EchoReply)
    assert reply.text == "pushed"
    with pytest.raises(ValueError, match="weight 0"):
        pool.set_endpoints("py-echo", [("127.0.0.1:1", 0)])
    with pytest.raises(ValueError, match="weight"):
        pool.set_endpoints("py-echo", [("127.0.0.1:1", "heavy")])  # type: ignore[list-item]


def test_the_aio_pool_sets_endpoints_too(server: str, pb: ModuleType) -> None:
    import asyncio

    async def main() -> str:
        async with grpcpool.aio.Pool() as pool:
            pool.set_endpoints("aio-echo", [server.removeprefix("http://")])
            reply = await pool.unary(
                "static:///aio-echo", ECHO, pb.EchoRequest(text="aio"), timeout=5.0, response_type=pb.EchoReply
            )
            return str(reply.text)

    assert asyncio.run(main()) == "aio"
