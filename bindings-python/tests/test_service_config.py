"""The service config through the Python face, against a grpcio server that fails the first
attempts of each call: retries to success with grpc-previous-rpc-attempts counted, codes the
policy does not name left alone, a dict or a str accepted, bad configs refused at creation."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent import futures
from typing import Dict, Iterator, List, Tuple

import grpc
import pytest

import grpcpool

METHOD = "/retry.Flaky/Call"


class Flaky:
    """Fails an attempt with the code in ``x-code`` while its ``grpc-previous-rpc-attempts``
    is below ``x-fail``; records each attempt's header value by ``x-id``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: Dict[str, List[int]] = {}

    def call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        previous = int(metadata.get("grpc-previous-rpc-attempts", "0"))
        with self.lock:
            self.attempts.setdefault(metadata.get("x-id", ""), []).append(previous)
        if previous < int(metadata.get("x-fail", "0")):
            context.abort(grpc.StatusCode[metadata.get("x-code", "UNAVAILABLE")], "not yet")
        return request


@pytest.fixture
def flaky() -> Iterator[Tuple[str, Flaky]]:
    service = Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("retry.Flaky", {"Call": grpc.unary_unary_rpc_method_handler(service.call)}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", service
    server.stop(None)


POLICY = {
    "methodConfig": [
        {
            "name": [{"service": "retry.Flaky"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.05s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


@pytest.mark.parametrize("form", ["dict", "str"])
def test_a_retry_policy_retries_until_the_server_answers(flaky: Tuple[str, Flaky], form: str) -> None:
    target, service = flaky
    config = POLICY if form == "dict" else json.dumps(POLICY)
    with grpcpool.Pool(service_config=config) as pool:
        reply = pool.unary(target, METHOD, b"hello", timeout=5, metadata=(("x-id", "a"), ("x-fail", "2")))
        assert reply == b"hello"
        assert service.attempts["a"] == [0, 1, 2]
        with pytest.raises(grpcpool.RpcError) as refused:
            pool.unary(
                target, METHOD, b"", timeout=5, metadata=(("x-id", "b"), ("x-fail", "2"), ("x-code", "INVALID_ARGUMENT"))
            )
        assert refused.value.code() is grpcpool.StatusCode.INVALID_ARGUMENT
        assert service.attempts["b"] == [0], "a code the policy does not name is not retried"
        with pytest.raises(grpcpool.RpcError) as spent:
            pool.unary(target, METHOD, b"", timeout=5, metadata=(("x-id", "c"), ("x-fail", "9")))
        assert spent.value.code() is grpcpool.StatusCode.UNAVAILABLE
        assert service.attempts["c"] == [0, 1, 2, 3], "maxAttempts 4"
        stats = pool.stats()["targets"][0]
        assert stats["retries"] == 2 + 3


def test_the_aio_pool_takes_the_same_service_config(flaky: Tuple[str, Flaky]) -> None:
    target, service = flaky

    async def main() -> bytes:
        async with grpcpool.aio.Pool(service_config=POLICY) as pool:
            return await pool.unary(target, METHOD, b"aio", timeout=5, metadata=(("x-id", "d"), ("x-fail", "1")))

    assert asyncio.run(main()) == b"aio"
    assert service.attempts["d"] == [0, 1]


@pytest.mark.parametrize(
    "config, field",
    [
        ({"methodConfig": [{"name": [{}], "timeout": 5}]}, "methodConfig[0].timeout"),
        ({"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 1}}]}, "retryPolicy"),
        ({"loadBalancingConfig": [{"grpclb": {}}]}, "loadBalancingConfig"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_service_configs_are_refused_when_the_pool_is_made(config: object, field: str) -> None:
    with pytest.raises(ValueError, match="service_config") as refused:
        grpcpool.Pool(service_config=config)  # type: ignore[arg-type]
    assert field in str(refused.value)


def test_a_service_config_must_be_json_text_or_a_dict() -> None:
    with pytest.raises(TypeError, match="service_config"):
        grpcpool.Pool(service_config=42)  # type: ignore[arg-type]


class Counting:
    """Answers ``/retry.Flaky/Call`` and counts the calls it served; a failing one answers
    each with UNAVAILABLE."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.failing = False

    def call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.calls += 1
        if self.failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "this backend fails every call")
        return request


@pytest.fixture
def three_servers() -> Iterator[Tuple[str, List[Counting]]]:
    """Three grpcio servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3 behind one target."""
    servers, services, hosts = [], [], []
    for octet in (1, 2, 3):
        service = Counting()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("retry.Flaky", {"Call": grpc.unary_unary_rpc_method_handler(service.call)}),)
        )
        port = server.add_insecure_port(f"127.0.0.{octet}:0")
        server.start()
        servers.append(server)
        services.append(service)
        hosts.append(f"127.0.0.{octet}:{port}")
    yield "http://" + ",".join(hosts), services
    for server in servers:
        server.stop(None)


def test_round_robin_spreads_calls_over_every_address(three_servers: Tuple[str, List[Counting]]) -> None:
    target, services = three_servers
    with grpcpool.Pool(service_config={"loadBalancingConfig": [{"round_robin": {}}]}) as pool:
        pool.unary(target, METHOD, b"warm", timeout=5)
        for _ in range(500):  # bounded: until a connection to every address is up
            if pool.stats()["targets"][0]["connections"]["ready"] == 3:
                break
            time.sleep(0.01)
        before = [service.calls for service in services]
        for _ in range(300):
            pool.unary(target, METHOD, b"x", timeout=5)
    spread = [service.calls - seen for service, seen in zip(services, before)]
    assert spread == [100, 100, 100]


def test_pick_first_sends_every_call_to_the_first_address(three_servers: Tuple[str, List[Counting]]) -> None:
    target, services = three_servers
    with grpcpool.Pool(service_config='{"loadBalancingConfig": [{"pick_first": {}}]}') as pool:
        for _ in range(100):
            pool.unary(target, METHOD, b"x", timeout=5)
    assert [service.calls for service in services] == [100, 0, 0]


def test_a_target_has_settings_of_its_own(flaky: Tuple[str, Flaky]) -> None:
    target, service = flaky
    # The same server under a second name keeps the pool's settings: no retry policy.
    other = target.replace("127.0.0.1", "localhost")
    with grpcpool.Pool(targets={target: {"service_config": POLICY, "keepalive_time": 60.0}}) as pool:
        assert pool.unary(target, METHOD, b"own", timeout=5, metadata=(("x-id", "t1"), ("x-fail", "1"))) == b"own"
        with pytest.raises(grpcpool.RpcError) as refused:
            pool.unary(other, METHOD, b"", timeout=5, metadata=(("x-id", "t2"), ("x-fail", "1")))
        assert refused.value.code() is grpcpool.StatusCode.UNAVAILABLE
        stats = {entry["target"]: entry for entry in pool.stats()["targets"]}
        assert stats[target]["keepalive_time_ms"] == 60_000
        assert stats[other]["keepalive_time_ms"] == 300_000
    assert service.attempts["t1"] == [0, 1] and service.attempts["t2"] == [0]


def test_pool_wide_settings_cannot_be_set_per_target() -> None:
    with pytest.raises(ValueError, match="worker_threads belongs to the pool"):
        grpcpool.Pool(targets={"http://127.0.0.1:1": {"worker_threads": 2}})
    with pytest.raises(ValueError, match="target http://127.0.0.1:1: max_connections_per_target"):
        grpcpool.Pool(targets={"http://127.0.0.1:1": {"max_connections_per_target": 0}})


def test_outlier_detection_ejects_a_backend_that_fails_every_call(three_servers: Tuple[str, List[Counting]]) -> None:
    target, services = three_servers
    services[2].failing = True
    config = {
        "loadBalancingConfig": [
            {
                "outlier_detection_experimental": {
                    "interval": "0.2s",
                    "baseEjectionTime": "5s",
                    "maxEjectionPercent": 50,
                    "failurePercentageEjection": {"threshold": 50, "minimumHosts": 3, "requestVolume": 10},
                    "childPolicy": [{"round_robin": {}}],
                }
            }
        ]
    }

    def call() -> bool:
        try:
            pool.unary(target, METHOD, b"x", timeout=5)
            return True
        except grpcpool.RpcError:
            return False

    with grpcpool.Pool(service_config=config) as pool:
        deadline = time.monotonic() + 10
        before = 0
        # Bounded in count and time: until the failing backend is ejected.
        while before < 20_000 and time.monotonic() < deadline:
            call()
            before += 1
            if pool.stats()["targets"][0]["ejected_addresses"] == 1:
                break
        stats = pool.stats()["targets"][0]
        assert stats["ejected_addresses"] == 1, f"not ejected after {before} calls"
        failing_calls = services[2].calls
        failed = sum(not call() for _ in range(300))
        stats = pool.stats()["targets"][0]
        if stats["ejected_addresses"] == 1:
            assert services[2].calls == failing_calls, "an ejected backend got calls"
        assert failed * 50 < 300, f"{failed} of 300 failed"
        ejected = [c["address"] for c in stats["per_connection"] if c["ejected"]]
        assert ejected and all(address.startswith("127.0.0.3") for address in ejected)
        assert stats["ejections"] >= 1
        assert "grpcpool_ejections_total{" in pool.metrics_text()
