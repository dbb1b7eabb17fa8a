"""Metrics only a runtime-backed actor has (the engine's own live in ``asya.engine.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from asya.contracts import metrics as names
from asya.engine.metrics import LATENCY_BUCKETS, Metrics


class SidecarMetrics:
    """Publishes, runtime round trips, runtime errors and abandoned calls, in the engine's registry."""

    def __init__(self, metrics: Metrics) -> None:
        self.processed = metrics.processed
        self.queue_wait = metrics.queue_wait
        self.outputs_published = metrics.bound(Counter, names.SIDECAR_OUTPUTS_PUBLISHED, "destination")
        self.processing_seconds = metrics.bound(
            Histogram, names.SIDECAR_PROCESSING_SECONDS, buckets=LATENCY_BUCKETS
        ).labels()
        self.runtime_errors = metrics.bound(Counter, names.SIDECAR_RUNTIME_ERRORS, "code")
        self.abandoned = metrics.bound(Gauge, names.SIDECAR_STUCK_CALLS).labels()
        self.runtime_restarts = metrics.bound(Counter, names.SIDECAR_RUNTIME_RESTARTS).labels()
