"""The gateway's Prometheus metrics and its ``GET /metrics``.

Counters and the latency histogram are per replica (Prometheus sums them); the jobs
gauge is read from PostgreSQL at scrape time, so every replica reports the same,
whole-store figure (dashboards use ``max`` over replicas for it). Labels are tool names
and statuses, never job ids. ``/metrics`` needs no token: it exposes counts only, and
Prometheus scrapes it from inside the cluster (the chart's NetworkPolicy scope).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from asya.contracts import metrics as names

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled")


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        m = names.BY_NAME
        self.created = Counter(
            names.GATEWAY_JOBS_CREATED, m[names.GATEWAY_JOBS_CREATED].help, ["tool"], registry=self.registry
        )
        self.finished = Counter(
            names.GATEWAY_JOBS_FINISHED, m[names.GATEWAY_JOBS_FINISHED].help, ["status"], registry=self.registry
        )
        self.jobs = Gauge(names.GATEWAY_JOBS, m[names.GATEWAY_JOBS].help, ["status"], registry=self.registry)
        self.duration = Histogram(
            names.GATEWAY_JOB_DURATION_SECONDS,
            m[names.GATEWAY_JOB_DURATION_SECONDS].help,
            ["status"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )

    def job_created(self, tool: str | None) -> None:
        self.created.labels(tool=tool or "route").inc()

    def job_finished(self, job: Mapping[str, Any]) -> None:
        """Count a job that has just reached a final status (``job`` is a stored row)."""
        status = str(job["status"])
        self.finished.labels(status=status).inc()
        started, ended = job.get("created_at"), job.get("finished_at")
        if isinstance(started, datetime.datetime) and isinstance(ended, datetime.datetime):
            self.duration.labels(status=status).observe(max(0.0, (ended - started).total_seconds()))

    async def refresh(self, pool: asyncpg.Pool) -> None:
        rows = await pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        counts = {str(r["status"]): int(r["n"]) for r in rows}
        for status in {*STATUSES, *counts}:
            self.jobs.labels(status=status).set(counts.get(status, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def metrics_view(request: Request) -> Response:
    gw = request.app.state.gateway
    await gw.metrics.refresh(gw.store.pool)
    return Response(gw.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
