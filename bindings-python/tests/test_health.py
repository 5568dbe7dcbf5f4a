"""Client-side health checking through the Python face, against grpcio servers running
grpcio-health-checking's servicer: a server set NOT_SERVING under load gets no calls within
a second, gets calls again within two of SERVING, and a server without the health service is
still used."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Iterator, List, Optional, Tuple

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import grpcpool

SERVICE = "health.Echo"
METHOD = "/health.Echo/Call"


class Backend:
    """A grpcio server answering METHOD and counting its calls, with a health servicer or none."""

    def __init__(self, octet: int, with_health: bool) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("health.Echo", {"Call": grpc.unary_unary_rpc_method_handler(self.call)}),)
        )
        self.health: Optional[health.HealthServicer] = None
        if with_health:
            self.health = health.HealthServicer()
            self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.{octet}:0")
        self.host = f"127.0.0.{octet}:{self.port}"
        self.server.start()

    def call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.calls += 1
        return request

    def serving(self, serving: bool) -> None:
        assert self.health is not None
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set(SERVICE, status)


@pytest.fixture
def backends() -> Iterator[Tuple[str, List[Backend]]]:
    started = [Backend(1, True), Backend(2, True), Backend(3, False)]
    yield "http://" + ",".join(backend.host for backend in started), started
    for backend in started:
        backend.server.stop(None)


def test_a_not_serving_backend_gets_no_calls_until_it_serves_again(backends: Tuple[str, List[Backend]]) -> None:
    target, servers = backends
    config = {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": SERVICE}}
    failures: List[BaseException] = []
    stop = threading.Event()
    with grpcpool.Pool(service_config=config) as pool:
        pool.unary(target, METHOD, b"warm", timeout=5)

        def load() -> None:
            for _ in range(100_000):  # bounded; stops when the test says so
                if stop.is_set():
                    return
                try:
                    pool.unary(target, METHOD, b"x", timeout=5)
                except grpcpool.RpcError as error:
                    failures.append(error)

        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 10
            while min(server.calls for server in servers) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert min(server.calls for server in servers) >= 20, [server.calls for server in servers]

            servers[1].serving(False)
            time.sleep(1.0)
            after_a_second = servers[1].calls
            unchecked = servers[2].calls
            time.sleep(0.7)
            assert servers[1].calls == after_a_second, "calls reached a NOT_SERVING backend after 1 s"
            assert servers[2].calls > unchecked, "the backend without a health service stopped getting calls"

            servers[1].serving(True)
            back = servers[1].calls
            deadline = time.monotonic() + 2
            while servers[1].calls <= back + 10 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert servers[1].calls > back + 10, "no calls within 2 s of SERVING again"
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    assert failures == []
