"""Envelope header names that more than one component reads or writes.

These keys live in the envelope's ``headers`` object (SPEC section 2), so they
survive every hop. error-end writes the retry counters and the dead-letter
reason; the operator sets the budget defaults from the CRD; ``asya dlq replay``
resets them. Transport-level headers (not part of the envelope) live with the
transports, e.g. ``asya.transports.ATTEMPT_HEADER``.
"""

from __future__ import annotations

RETRY_ATTEMPT = "x-asya-retry-attempt"
"""Which attempt at the step in ``RETRY_STEP`` this envelope is (int, 1 = first try; absent means 1)."""
RETRY_MAX = "x-asya-retry-max"
"""Retry budget: total attempts allowed per step, first try included (int); absent = error-end default."""
RETRY_STEP = "x-asya-retry-step"
"""``route.current`` the attempt count belongs to; a failure at another step starts counting afresh."""
RETRY_BACKOFF_BASE_S = "x-asya-retry-backoff-base-s"
"""Optional per-envelope override of the first backoff delay (float, seconds)."""
RETRY_BACKOFF_MAX_S = "x-asya-retry-backoff-max-s"
"""Optional per-envelope override of the largest backoff delay (float, seconds)."""
RETRY_NOT_BEFORE = "x-asya-retry-not-before"
"""Unix time (float) before which a retried envelope should not run; set with the delayed publish."""
DLQ_REASON = "x-asya-dlq-reason"
"""Why error-end dead-lettered the envelope: one of the ``DlqReason`` values in asya.crew."""
DLQ_AT = "x-asya-dlq-at"
"""Unix time (float) at which error-end dead-lettered the envelope."""
REPLAYED = "x-asya-replayed"
"""How many times ``asya dlq replay`` sent this envelope back (int)."""
HOPS = "x-asya-hops"
"""Outputs this envelope has passed through (int); the sidecar adds one per published output and sends it to
error-end (``hop_budget``) once ``ASYA_MAX_HOPS`` is spent, which stops a runaway self-loop."""
DEADLINE = "x-asya-deadline"
"""Unix time (float, seconds) by which the whole job must have ended; set by whoever creates the job (the
gateway from ``deadline``/``timeout_s``). Each sidecar bounds its handler by ``min(actor timeout, time left)``
and sends an envelope past it to error-end as ``deadline_exceeded``, which is never retried."""
PUBLISHED_AT = "x-asya-published-at"
"""Unix time (float, seconds) at which this envelope was last published; rewritten at every publish (sidecar,
gateway, client, crew). The next sidecar measures queue wait from it (``asya_sidecar_queue_wait_seconds``)."""
