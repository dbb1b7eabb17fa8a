"""The operator's Prometheus metrics: reconciles by result and the actors it manages.

Served on ``ASYA_OPERATOR_METRICS_PORT`` (off when unset) by prometheus-client's own
small HTTP server in a thread, beside kopf's liveness endpoint. An actor counts as
managed while its status timer keeps ticking: one that was deleted stops ticking and
drops out after ``STALE_TICKS`` intervals, without a delete handler for every actor.
"""

from __future__ import annotations

import time
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from asya.contracts import metrics as names

STALE_TICKS = 2.5
Result = Literal["ok", "error", "rejected"]


class OperatorMetrics:
    def __init__(self, status_interval_s: float) -> None:
        self.registry = CollectorRegistry()
        self._window = status_interval_s * STALE_TICKS
        self._seen: dict[tuple[str, str], float] = {}
        self.reconciles = Counter(
            names.OPERATOR_RECONCILES,
            names.ALL_METRICS[names.OPERATOR_RECONCILES],
            ["result"],
            registry=self.registry,
        )
        managed = Gauge(
            names.OPERATOR_MANAGED_ACTORS, names.ALL_METRICS[names.OPERATOR_MANAGED_ACTORS], registry=self.registry
        )
        managed.set_function(self._managed)

    def reconciled(self, result: Result) -> None:
        self.reconciles.labels(result=result).inc()

    def seen(self, namespace: str, name: str) -> None:
        self._seen[(namespace, name)] = time.monotonic()

    def forget(self, namespace: str, name: str) -> None:
        self._seen.pop((namespace, name), None)

    def _managed(self) -> float:
        cutoff = time.monotonic() - self._window
        for key in [k for k, t in self._seen.items() if t < cutoff]:
            del self._seen[key]
        return float(len(self._seen))

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
