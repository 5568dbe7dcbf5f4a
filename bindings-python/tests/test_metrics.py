"""The metrics text through the Python face: after a known mix of calls against a grpcio
server (OK, NOT_FOUND, DEADLINE_EXCEEDED) it parses with prometheus_client's parser and counts
the calls made, and a scrape of a prometheus_client registry with grpcpool's collector gives
the same figures."""

from __future__ import annotations

import time
from concurrent import futures
from typing import Dict, Iterator, Tuple

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import grpcpool
from grpcpool.metrics import Collector

METHOD = "/metrics.Echo/Call"


def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
    metadata = dict(context.invocation_metadata())
    if metadata.get("x-sleep"):
        time.sleep(float(str(metadata["x-sleep"])))
    if metadata.get("x-code"):
        context.abort(grpc.StatusCode[str(metadata["x-code"])], "as asked")
    return request


@pytest.fixture
def target() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("metrics.Echo", {"Call": grpc.unary_unary_rpc_method_handler(answer)}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop(None)


def call_counts(text: str, target: str) -> Dict[Tuple[str, str], float]:
    """(metric sample name, status) to value for the Call method of `target`."""
    counts: Dict[Tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("grpc_method") == "metrics.Echo/Call" and labels.get("grpc_target") == target:
                if sample.name.endswith("_count") or sample.name.endswith("_total"):
                    counts[(sample.name, labels.get("grpc_status", ""))] = sample.value
    return counts


def test_the_text_counts_a_known_mix_of_calls_and_a_scrape_agrees(target: str) -> None:
    with grpcpool.Pool() as pool:
        for _ in range(3):
            pool.unary(target, METHOD, b"ok", timeout=5)
        for _ in range(2):
            with pytest.raises(grpcpool.RpcError):
                pool.unary(target, METHOD, b"", timeout=5, metadata=(("x-code", "NOT_FOUND"),))
        with pytest.raises(grpcpool.RpcError) as late:
            pool.unary(target, METHOD, b"", timeout=0.1, metadata=(("x-sleep", "1"),))
        assert late.value.code() is grpcpool.StatusCode.DEADLINE_EXCEEDED
        text = pool.metrics_text()
        (connection,) = pool.stats()["targets"][0]["per_connection"]
        assert connection["address"] == target.replace("http://", "")
        assert connection["state"] == "ready" and connection["calls"] == 6
        registry = CollectorRegistry()
        registry.register(Collector(pool))
        scraped = generate_latest(registry).decode()
    counts = call_counts(text, target)
    assert counts[("grpc_client_call_duration_seconds_count", "OK")] == 3
    assert counts[("grpc_client_call_duration_seconds_count", "NOT_FOUND")] == 2
    assert counts[("grpc_client_call_duration_seconds_count", "DEADLINE_EXCEEDED")] == 1
    assert counts[("grpc_client_attempt_started_total", "")] == 6
    assert call_counts(scraped, target) == counts
