"""Prometheus collectors of one consumer process, and the registry ``/metrics`` serves.

Names and help texts come from ``asya.contracts.metrics``, so dashboards and
docs check against one list. Every process owns its registry (no globals),
which keeps tests that run several engines in one process independent.
The engine fills the per-delivery collectors; processors add their own with
``bound`` (``actor`` = this process's actor) or ``inc`` (labels chosen per call).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from asya.contracts import headers
from asya.contracts import metrics as names

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Bound:
    """A labelled collector with ``actor`` filled in; children cached because this is the hot path."""

    def __init__(self, collector: Any, actor: str) -> None:
        self._collector = collector
        self._actor = actor
        self._children: dict[tuple[tuple[str, str], ...], Any] = {}

    def labels(self, **labels: str) -> Any:
        key = tuple(sorted(labels.items()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._collector.labels(actor=self._actor, **labels)
        return child


class Metrics:
    """The registry of one process plus the collectors the engine itself updates."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.registry = CollectorRegistry()
        self._free: dict[str, Counter] = {}
        self.received = self.bound(Counter, names.SIDECAR_MESSAGES_RECEIVED).labels()
        self.processed = self.bound(Counter, names.SIDECAR_MESSAGES_PROCESSED, "outcome")
        self.inflight = self.bound(Gauge, names.SIDECAR_INFLIGHT).labels()
        self.hop_seconds = self.bound(Histogram, names.SIDECAR_HOP_SECONDS, buckets=LATENCY_BUCKETS).labels()
        self.queue_wait_seconds = self.bound(
            Histogram, names.SIDECAR_QUEUE_WAIT_SECONDS, buckets=LATENCY_BUCKETS
        ).labels()
        # gateway reports (asya.engine.reporting): labels are kinds and reasons, never job ids
        self.reports_sent = self.bound(Counter, names.REPORTS_SENT, "kind")
        self.reports_retried = self.bound(Counter, names.REPORTS_RETRIED, "kind")
        self.reports_dropped = self.bound(Counter, names.REPORTS_DROPPED, "kind", "reason")
        self.reports_pending = self.bound(Gauge, names.REPORTS_PENDING).labels()
        # envelopes of cancelled jobs (asya.sidecar): by stage only, job ids are unbounded
        self.cancelled_dropped = self.bound(Counter, names.SIDECAR_CANCELLED_DROPPED, "stage")

    def queue_wait(self, env: Mapping[str, Any]) -> None:
        """Observe how long ``env`` waited in the queue (from ``x-asya-published-at``, if it has one).

        A retried envelope waits on purpose until ``x-asya-retry-not-before``: only the time past
        that counts. Clock skew between hosts can make it negative: clamped to 0.
        """
        hdrs = env.get("headers")
        if not isinstance(hdrs, dict):
            return
        published = hdrs.get(headers.PUBLISHED_AT)
        if not isinstance(published, int | float) or isinstance(published, bool):
            return
        not_before = hdrs.get(headers.RETRY_NOT_BEFORE)
        if isinstance(not_before, int | float) and not isinstance(not_before, bool) and not_before > published:
            published = not_before
        self.queue_wait_seconds.observe(max(0.0, time.time() - published))

    def bound(self, kind: type[Any], name: str, *labels: str, **kw: Any) -> Bound:
        """A collector whose ``actor`` label is this process's actor."""
        return Bound(kind(name, names.ALL_METRICS[name], ["actor", *labels], registry=self.registry, **kw), self.actor)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Increment counter ``name`` with labels chosen by the caller (e.g. the pipeline actor a result came from)."""
        counter = self._free.get(name)
        if counter is None:
            counter = self._free[name] = Counter(name, names.ALL_METRICS[name], sorted(labels), registry=self.registry)
        counter.labels(**labels).inc(amount)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and the CLI read counters this way)."""
        found = self.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
