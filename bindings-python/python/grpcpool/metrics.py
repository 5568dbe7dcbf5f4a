"""The pool's metrics for ``prometheus_client``: ``REGISTRY.register(Collector(pool))`` serves
gRPC's OpenTelemetry client metrics (A66) and the pool's own ``grpcpool_*`` at every scrape,
read from :meth:`grpcpool.Pool.metrics_text` (``prometheus_client`` is needed only here)."""

from __future__ import annotations

from typing import Iterator, Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Collector"]


class _HasMetrics(Protocol):
    def metrics_text(self) -> str: ...


class Collector:
    """A ``prometheus_client`` collector of one pool (``grpcpool.Pool`` or ``grpcpool.aio.Pool``)."""

    def __init__(self, pool: _HasMetrics) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        """The pool's metric families now, as ``prometheus_client`` parses its text."""
        yield from text_string_to_metric_families(self._pool.metrics_text())
