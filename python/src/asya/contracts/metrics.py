"""Prometheus metric names, one table for every component (SPEC section 10).

Components create their collectors from these names so that dashboards, alert
rules and docs can be checked against a single list.
"""

from __future__ import annotations

SIDECAR_MESSAGES_RECEIVED = "asya_sidecar_messages_received_total"
SIDECAR_MESSAGES_PROCESSED = "asya_sidecar_messages_processed_total"
"""Labels: actor, outcome (success|error|requeued|ended_early|cancelled|cancelled_after_call)."""
SIDECAR_OUTPUTS_PUBLISHED = "asya_sidecar_outputs_published_total"
SIDECAR_PROCESSING_SECONDS = "asya_sidecar_processing_seconds"
"""Histogram of runtime round-trip time per message, labels: actor."""
SIDECAR_HOP_SECONDS = "asya_sidecar_hop_seconds"
"""Histogram from receive to ack (runtime + publishes), labels: actor."""
SIDECAR_INFLIGHT = "asya_sidecar_inflight_messages"
SIDECAR_RUNTIME_ERRORS = "asya_sidecar_runtime_errors_total"
"""Labels: actor, code (an ErrorCode value)."""
SIDECAR_STUCK_CALLS = "asya_sidecar_abandoned_calls"
SIDECAR_CANCELLED_DROPPED = "asya_sidecar_cancelled_dropped_total"
"""Labels: actor, stage (``before_call``: never sent to the runtime; ``outputs``: the handler ran, its outputs
were dropped). Never a job id: those are unbounded."""
SIDECAR_CANCELLED_KNOWN = "asya_sidecar_cancelled_jobs_known"
"""Gauge, labels: actor; cancelled job ids held in memory (bounded by age and count)."""
CANCELLATION_POLL_FAILURES = "asya_cancellation_poll_failures_total"
"""Labels: actor; failed polls of the gateway's cancellation feed (the sidecar keeps processing)."""

REPORTS_SENT = "asya_reports_sent_total"
"""Labels: actor, kind (progress|final); reports the gateway accepted."""
REPORTS_RETRIED = "asya_reports_retried_total"
"""Labels: actor, kind; extra attempts after a failed post (the report waits in the background)."""
REPORTS_DROPPED = "asya_reports_dropped_total"
"""Labels: actor, kind, reason (queue_full|gave_up|rejected); reports that never reached the gateway."""

CREW_RESULTS_STORED = "asya_crew_results_stored_total"
"""happy-end, labels: actor (the last actor of the route)."""
CREW_STORE_FAILURES = "asya_crew_store_failures_total"
"""happy-end, labels: actor; each failed attempt to store a result (it is retried)."""
CREW_RETRIES_SCHEDULED = "asya_crew_retries_scheduled_total"
"""error-end, labels: actor (the failing actor)."""
CREW_DEAD_LETTERS = "asya_crew_dead_letters_total"
"""error-end and happy-end, labels: actor, reason (a DlqReason value)."""

# Added for the observability issue (12). Helpers share these names; emit them where noted.
SIDECAR_QUEUE_WAIT_SECONDS = "asya_sidecar_queue_wait_seconds"
"""Histogram, labels: actor; time from the envelope's publish (header ``x-asya-published-at``) to the sidecar
taking it. Envelopes without the header (0.1.x producers) are not observed."""
SIDECAR_RUNTIME_RESTARTS = "asya_sidecar_runtime_restarts_total"
"""Labels: actor; the runtime connection was lost and a new runtime process answered (crash, OOM, kill)."""
REPORTS_PENDING = "asya_reports_pending"
"""Gauge, labels: actor; reports waiting in the sidecar for the gateway (the report backlog)."""
GATEWAY_JOBS_CREATED = "asya_gateway_jobs_created_total"
"""Labels: tool (tool name, or ``route`` for a raw-route job); the tool set is bounded by config."""
GATEWAY_JOBS_FINISHED = "asya_gateway_jobs_finished_total"
"""Labels: status (succeeded|failed|cancelled)."""
GATEWAY_JOBS = "asya_gateway_jobs"
"""Gauge, labels: status; jobs in the store by status, read at scrape time."""
GATEWAY_JOB_DURATION_SECONDS = "asya_gateway_job_duration_seconds"
"""Histogram, labels: status; end-to-end job latency, from creation to the final report."""
OPERATOR_RECONCILES = "asya_operator_reconciles_total"
"""Labels: result (ok|error); one per AsyncActor reconcile (create/update/resume/timer that wrote)."""
OPERATOR_MANAGED_ACTORS = "asya_operator_managed_actors"
"""Gauge, no labels; AsyncActors this operator manages."""

ALL_METRICS = {
    SIDECAR_MESSAGES_RECEIVED: "Envelopes taken from the actor queue.",
    SIDECAR_MESSAGES_PROCESSED: "Envelopes finished, by outcome.",
    SIDECAR_OUTPUTS_PUBLISHED: "Envelopes published to a next queue (confirmed by the broker).",
    SIDECAR_PROCESSING_SECONDS: "Runtime round-trip time per envelope.",
    SIDECAR_HOP_SECONDS: "Time from receive to acknowledgement per envelope.",
    SIDECAR_INFLIGHT: "Envelopes currently being processed.",
    SIDECAR_RUNTIME_ERRORS: "Error results from the runtime or the runtime connection, by code.",
    SIDECAR_STUCK_CALLS: "Runtime calls abandoned after the processing timeout and still running.",
    SIDECAR_CANCELLED_DROPPED: "Envelopes (or their outputs) dropped because their job was cancelled.",
    SIDECAR_CANCELLED_KNOWN: "Cancelled job ids this sidecar holds in memory.",
    CANCELLATION_POLL_FAILURES: "Failed polls of the gateway's cancellation feed.",
    REPORTS_SENT: "Reports to the gateway it accepted.",
    REPORTS_RETRIED: "Report posts tried again after a failure.",
    REPORTS_DROPPED: "Reports given up (queue full, retry bound reached, or refused by the gateway).",
    CREW_RESULTS_STORED: "Final envelopes stored by happy-end.",
    CREW_STORE_FAILURES: "Failed attempts to store a final envelope (S3 unavailable); the envelope is retried.",
    CREW_RETRIES_SCHEDULED: "Failed envelopes sent back to their actor with a delay by error-end.",
    CREW_DEAD_LETTERS: "Envelopes dead-lettered (stored under errors/ and published to asya-dlq).",
    SIDECAR_QUEUE_WAIT_SECONDS: "Time from an envelope's publish to the sidecar taking it from the queue.",
    SIDECAR_RUNTIME_RESTARTS: "Runtime processes replaced after the connection to the previous one was lost.",
    REPORTS_PENDING: "Reports waiting in the sidecar to be posted to the gateway.",
    GATEWAY_JOBS_CREATED: "Jobs the gateway created, by tool.",
    GATEWAY_JOBS_FINISHED: "Jobs that reached a final status, by status.",
    GATEWAY_JOBS: "Jobs in the gateway's store, by status.",
    GATEWAY_JOB_DURATION_SECONDS: "End-to-end job latency, from creation to the final report.",
    OPERATOR_RECONCILES: "AsyncActor reconciles, by result.",
    OPERATOR_MANAGED_ACTORS: "AsyncActors this operator manages.",
}
