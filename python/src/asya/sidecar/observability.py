"""Sidecar metrics and the /healthz, /readyz, /metrics HTTP endpoints.

Metric names come from ``asya.contracts.metrics`` so dashboards and docs use
one list. Each sidecar owns its registry (no process globals), which keeps
tests that run several sidecars in one process independent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from asya.contracts import metrics as names

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class Metrics:
    """Collectors for one actor's sidecar; the ``actor`` label is bound once."""

    def __init__(self, actor: str) -> None:
        self.registry = CollectorRegistry()

        def make(kind: type[Any], name: str, labels: list[str], **kw: Any) -> Any:
            return kind(name, names.ALL_METRICS[name], ["actor", *labels], registry=self.registry, **kw)

        self._received = make(Counter, names.SIDECAR_MESSAGES_RECEIVED, [])
        self._processed = make(Counter, names.SIDECAR_MESSAGES_PROCESSED, ["outcome"])
        self._published = make(Counter, names.SIDECAR_OUTPUTS_PUBLISHED, ["destination"])
        self._processing = make(Histogram, names.SIDECAR_PROCESSING_SECONDS, [], buckets=_LATENCY_BUCKETS)
        self._hop = make(Histogram, names.SIDECAR_HOP_SECONDS, [], buckets=_LATENCY_BUCKETS)
        self._inflight = make(Gauge, names.SIDECAR_INFLIGHT, [])
        self._runtime_errors = make(Counter, names.SIDECAR_RUNTIME_ERRORS, ["code"])
        self._abandoned = make(Gauge, names.SIDECAR_STUCK_CALLS, [])
        self.received = self._received.labels(actor=actor)
        self.processing_seconds = self._processing.labels(actor=actor)
        self.hop_seconds = self._hop.labels(actor=actor)
        self.inflight = self._inflight.labels(actor=actor)
        self.abandoned = self._abandoned.labels(actor=actor)
        self.processed = _Bound(self._processed, actor)
        self.outputs_published = _Bound(self._published, actor)
        self.runtime_errors = _Bound(self._runtime_errors, actor)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Bound:
    """A labelled collector with the ``actor`` label already filled in (children cached: hot path)."""

    def __init__(self, collector: Counter, actor: str) -> None:
        self._collector = collector
        self._actor = actor
        self._children: dict[tuple[tuple[str, str], ...], Counter] = {}

    def labels(self, **labels: str) -> Counter:
        key = tuple(sorted(labels.items()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._collector.labels(actor=self._actor, **labels)
        return child


async def start_http(
    host: str,
    port: int,
    metrics: Metrics,
    healthy: Callable[[], tuple[bool, str]],
    ready: Callable[[], tuple[bool, str]],
) -> web.AppRunner:
    """Serve probes and metrics; returns the runner so the caller can stop it."""

    async def healthz(_: web.Request) -> web.Response:
        ok, why = healthy()
        return web.Response(status=200 if ok else 503, text=why)

    async def readyz(_: web.Request) -> web.Response:
        ok, why = ready()
        return web.Response(status=200 if ok else 503, text=why)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics_view)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
