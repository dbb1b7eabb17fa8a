"""Prometheus metrics of every component, in one table (SPEC section 10).

``TABLE`` is the contract: name, type, labels, which component exports it and what it
means. Components create their collectors from these names; ``docs/metrics.md`` is
generated from the table (``python -m asya.contracts.metrics > docs/metrics.md``), and
tests check that the table, the doc, the collectors the components really register,
the dashboards and the alert rules agree. Labels stay low-cardinality: actor names,
outcomes, codes, reasons and tool names, never envelope or job ids.

``EXTERNAL`` lists the metric families dashboards and rules read from other exporters
(RabbitMQ's ``rabbitmq_prometheus`` plugin, kube-state-metrics).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    labels: tuple[str, ...]
    component: str
    """sidecar, crew, consumer (any sidecar or crew process), gateway or operator."""
    help: str
    notes: str = ""


SIDECAR_MESSAGES_RECEIVED = "asya_sidecar_messages_received_total"
SIDECAR_MESSAGES_PROCESSED = "asya_sidecar_messages_processed_total"
SIDECAR_OUTPUTS_PUBLISHED = "asya_sidecar_outputs_published_total"
SIDECAR_PROCESSING_SECONDS = "asya_sidecar_processing_seconds"
SIDECAR_HOP_SECONDS = "asya_sidecar_hop_seconds"
SIDECAR_INFLIGHT = "asya_sidecar_inflight_messages"
SIDECAR_QUEUE_WAIT_SECONDS = "asya_sidecar_queue_wait_seconds"
SIDECAR_RUNTIME_ERRORS = "asya_sidecar_runtime_errors_total"
SIDECAR_RUNTIME_RESTARTS = "asya_sidecar_runtime_restarts_total"
SIDECAR_STUCK_CALLS = "asya_sidecar_abandoned_calls"
SIDECAR_CANCELLED_DROPPED = "asya_sidecar_cancelled_dropped_total"
SIDECAR_CANCELLED_KNOWN = "asya_sidecar_cancelled_jobs_known"
CANCELLATION_POLL_FAILURES = "asya_cancellation_poll_failures_total"
REPORTS_SENT = "asya_reports_sent_total"
REPORTS_RETRIED = "asya_reports_retried_total"
REPORTS_DROPPED = "asya_reports_dropped_total"
REPORTS_PENDING = "asya_reports_pending"
CREW_RESULTS_STORED = "asya_crew_results_stored_total"
CREW_STORE_FAILURES = "asya_crew_store_failures_total"
CREW_RETRIES_SCHEDULED = "asya_crew_retries_scheduled_total"
CREW_DEAD_LETTERS = "asya_crew_dead_letters_total"
GATEWAY_JOBS_CREATED = "asya_gateway_jobs_created_total"
GATEWAY_JOBS_FINISHED = "asya_gateway_jobs_finished_total"
GATEWAY_JOBS = "asya_gateway_jobs"
GATEWAY_JOB_DURATION_SECONDS = "asya_gateway_job_duration_seconds"
OPERATOR_RECONCILES = "asya_operator_reconciles_total"
OPERATOR_MANAGED_ACTORS = "asya_operator_managed_actors"

_A = ("actor",)

TABLE: tuple[Metric, ...] = (
    Metric(SIDECAR_MESSAGES_RECEIVED, "counter", _A, "consumer", "Envelopes taken from the actor queue."),
    Metric(
        SIDECAR_MESSAGES_PROCESSED,
        "counter",
        (*_A, "outcome"),
        "consumer",
        "Envelopes finished, by outcome.",
        "outcome: success, error, requeued, ended_early, cancelled, cancelled_after_call.",
    ),
    Metric(
        SIDECAR_OUTPUTS_PUBLISHED,
        "counter",
        (*_A, "destination"),
        "sidecar",
        "Envelopes published to a next queue (confirmed by the broker).",
        "destination: the actor the output went to (a next actor, happy-end or error-end).",
    ),
    Metric(SIDECAR_PROCESSING_SECONDS, "histogram", _A, "sidecar", "Runtime round-trip time per envelope."),
    Metric(SIDECAR_HOP_SECONDS, "histogram", _A, "consumer", "Time from receive to acknowledgement per envelope."),
    Metric(SIDECAR_INFLIGHT, "gauge", _A, "consumer", "Envelopes currently being processed."),
    Metric(
        SIDECAR_QUEUE_WAIT_SECONDS,
        "histogram",
        _A,
        "sidecar",
        "Time from an envelope's publish to the sidecar taking it from the queue.",
        "From the envelope header x-asya-published-at; envelopes without it (0.1.x producers) are not observed.",
    ),
    Metric(
        SIDECAR_RUNTIME_ERRORS,
        "counter",
        (*_A, "code"),
        "sidecar",
        "Error results from the runtime or the runtime connection, by code.",
        "code: an ErrorCode value (processing_error, timeout, connection_error, ...).",
    ),
    Metric(
        SIDECAR_RUNTIME_RESTARTS,
        "counter",
        _A,
        "sidecar",
        "Runtime processes replaced after the connection to the previous one was lost.",
    ),
    Metric(
        SIDECAR_STUCK_CALLS,
        "gauge",
        _A,
        "sidecar",
        "Runtime calls abandoned after the processing timeout and still running.",
    ),
    Metric(
        SIDECAR_CANCELLED_DROPPED,
        "counter",
        (*_A, "stage"),
        "sidecar",
        "Envelopes (or their outputs) dropped because their job was cancelled.",
        "stage: before_call (never sent to the runtime), outputs (the handler ran, its outputs were dropped).",
    ),
    Metric(SIDECAR_CANCELLED_KNOWN, "gauge", _A, "sidecar", "Cancelled job ids this sidecar holds in memory."),
    Metric(CANCELLATION_POLL_FAILURES, "counter", _A, "sidecar", "Failed polls of the gateway's cancellation feed."),
    Metric(
        REPORTS_SENT,
        "counter",
        (*_A, "kind"),
        "consumer",
        "Reports to the gateway it accepted.",
        "kind: progress, final.",
    ),
    Metric(REPORTS_RETRIED, "counter", (*_A, "kind"), "consumer", "Report posts tried again after a failure."),
    Metric(
        REPORTS_DROPPED,
        "counter",
        (*_A, "kind", "reason"),
        "consumer",
        "Reports given up (queue full, retry bound reached, or refused by the gateway).",
        "reason: queue_full, gave_up, rejected.",
    ),
    Metric(REPORTS_PENDING, "gauge", _A, "consumer", "Reports waiting in the process to be posted to the gateway."),
    Metric(
        CREW_RESULTS_STORED,
        "counter",
        _A,
        "crew",
        "Final envelopes stored by happy-end.",
        "actor: the last actor of the envelope's route.",
    ),
    Metric(
        CREW_STORE_FAILURES,
        "counter",
        _A,
        "crew",
        "Failed attempts to store a final envelope (S3 unavailable); the envelope is retried.",
    ),
    Metric(
        CREW_RETRIES_SCHEDULED,
        "counter",
        _A,
        "crew",
        "Failed envelopes sent back to their actor with a delay by error-end.",
        "actor: the failing actor.",
    ),
    Metric(
        CREW_DEAD_LETTERS,
        "counter",
        (*_A, "reason"),
        "crew",
        "Envelopes dead-lettered (stored under errors/ and published to asya-dlq).",
        "reason: a DlqReason value (retries_exhausted, not_retryable, route_mismatch, ...).",
    ),
    Metric(
        GATEWAY_JOBS_CREATED,
        "counter",
        ("tool",),
        "gateway",
        "Jobs the gateway created, by tool.",
        "tool: a configured tool name, or `route` for a job submitted with a raw route.",
    ),
    Metric(
        GATEWAY_JOBS_FINISHED,
        "counter",
        ("status",),
        "gateway",
        "Jobs that reached a final status, by status.",
        "status: succeeded, failed, cancelled.",
    ),
    Metric(GATEWAY_JOBS, "gauge", ("status",), "gateway", "Jobs in the gateway's store, by status (read at scrape)."),
    Metric(
        GATEWAY_JOB_DURATION_SECONDS,
        "histogram",
        ("status",),
        "gateway",
        "End-to-end job latency, from creation to the final report.",
    ),
    Metric(
        OPERATOR_RECONCILES,
        "counter",
        ("result",),
        "operator",
        "AsyncActor reconciles, by result.",
        "result: ok, error (a broker or API problem; retried), rejected (the spec or the API refused it: fix the spec).",
    ),
    Metric(OPERATOR_MANAGED_ACTORS, "gauge", (), "operator", "AsyncActors this operator manages."),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in TABLE}
ALL_METRICS: dict[str, str] = {m.name: m.help for m in TABLE}
"""Name -> help text, for building collectors."""

EXTERNAL: dict[str, str] = {
    "rabbitmq_queue_messages_ready": "RabbitMQ (rabbitmq_prometheus plugin, /metrics/per-object): messages ready per queue.",
    "rabbitmq_queue_messages_unacked": "RabbitMQ (same endpoint): messages delivered and not yet acknowledged per queue.",
    "rabbitmq_queue_messages": "RabbitMQ (same endpoint): ready + unacknowledged per queue.",
    "kube_deployment_status_replicas": "kube-state-metrics: replicas of a Deployment.",
    "kube_horizontalpodautoscaler_status_current_replicas": "kube-state-metrics: current replicas of an HPA (KEDA creates one per scaled actor).",
    "kube_horizontalpodautoscaler_spec_max_replicas": "kube-state-metrics: maxReplicas of an HPA.",
}
"""Families from other exporters that dashboards and rules may use."""


def sample_names(metric: Metric) -> tuple[str, ...]:
    """The series names Prometheus stores for ``metric`` (histograms have three)."""
    if metric.kind == "histogram":
        return (f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count")
    return (metric.name,)


def known_series() -> set[str]:
    """Every series name a query may use: ours (with histogram suffixes) and the external ones."""
    names = {s for m in TABLE for s in sample_names(m)}
    return names | set(EXTERNAL)


def markdown() -> str:
    """``docs/metrics.md``."""
    out = [
        "# Metrics",
        "",
        "Generated from `python/src/asya/contracts/metrics.py` by",
        "`python -m asya.contracts.metrics > docs/metrics.md`; a test fails when this file is stale.",
        "Every sidecar and crew process serves `/metrics` on its probe port, the gateway on its",
        "HTTP port, the operator on `ASYA_OPERATOR_METRICS_PORT`. Labels never hold envelope or job ids.",
        "The gateway's `GET /metrics` needs no token (Prometheus scrapes without one): it exposes",
        "counts by tool and status only, never an id or a payload; keep it inside the cluster.",
        "",
        "| metric | type | labels | component | meaning |",
        "|---|---|---|---|---|",
    ]
    for m in TABLE:
        meaning = m.help + (f" {m.notes}" if m.notes else "")
        labels = ", ".join(f"`{label}`" for label in m.labels) or "-"
        out.append(f"| `{m.name}` | {m.kind} | {labels} | {m.component} | {meaning} |")
    out += [
        "",
        "`consumer` = every sidecar and every crew process (both run the same engine).",
        "",
        "## From other exporters",
        "",
        "Dashboards and alert rules also read these families; they are not exported by Asya.",
        "",
        "| metric | source |",
        "|---|---|",
    ]
    out += [f"| `{name}` | {text} |" for name, text in EXTERNAL.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
