"""Error hierarchy shared by every component.

The class of an error carries the decision the platform takes: a
``RetryableError`` is worth another attempt (after ``delay`` seconds), a
``PermanentError`` goes straight to the dead-letter path. ``ErrorCode`` values
travel on the wire (runtime error items, error-end payloads).
"""

from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    """Error codes carried in runtime error items and error-end payloads."""

    PROCESSING_ERROR = "processing_error"
    """The handler raised, or returned something that cannot be serialised."""
    MSG_PARSING_ERROR = "msg_parsing_error"
    """The message is not a valid envelope (bad JSON, missing field, wrong route)."""
    CONNECTION_ERROR = "connection_error"
    """The sidecar could not talk to the runtime (socket gone, process died)."""
    TIMEOUT_ERROR = "timeout_error"
    """The handler did not answer within the actor's processing timeout."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    """The job's deadline (``x-asya-deadline``) passed before or while this step ran; never retried."""
    CANCELLED = "cancelled"
    """The job was cancelled at the gateway; the envelope was dropped at this hop (reported, not an error-end)."""


class DlqReason(str, enum.Enum):
    """Why an envelope was dead-lettered (value of the ``x-asya-dlq-reason`` header)."""

    NON_RETRYABLE = "non_retryable"
    """The error code or exception type is configured as not worth retrying."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """The step failed on every attempt of its budget."""
    CRASH_LOOP = "crash_loop"
    """The runtime died on every delivery (``connection_error`` after max deliveries)."""
    UNPARSABLE = "unparsable"
    """An end actor could not read the message at all (not JSON, not an object, no id)."""
    MALFORMED = "malformed"
    """JSON, but not an error message error-end can act on (no error, no route to retry)."""
    UNDELIVERABLE = "undeliverable"
    """The retry could not be published at all (e.g. too large for the transport, no claim check)."""
    DELIVERY_LIMIT = "delivery_limit"
    """The broker delivered the message more than ``ASYA_MAX_DELIVERIES`` times, whatever the cause."""
    PROCESSOR_ERROR = "processor_error"
    """An end actor itself failed on the message with an unexpected exception (a bug, not the broker)."""
    HOP_BUDGET = "hop_budget"
    """The envelope passed through ``ASYA_MAX_HOPS`` outputs (``x-asya-hops``): a route that loops, e.g. an
    envelope-mode handler that keeps sending the envelope back to its own actor."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    """The job's deadline (``x-asya-deadline``) passed before the step ended, or a retry would have started
    after it: never retried, whatever the budget says."""


class AsyaError(Exception):
    """Root of every error Asya raises on purpose."""


class RetryableError(AsyaError):
    """A failure that may succeed if tried again later."""

    def __init__(self, message: str, delay: float = 0.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(AsyaError):
    """A failure that will fail the same way every time: dead-letter it."""


class EnvelopeError(PermanentError):
    """An envelope that breaks the wire contract; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class InfrastructureError(AsyaError):
    """The broker or the object store failed, not the message: give the delivery back.

    The consumer engine treats these (and ``ConnectionError`` / ``TimeoutError``
    raised by I/O) as "try again later"; every other exception met while
    processing sends the envelope to error-end, so a bug can never loop.
    Redelivery is still bounded by ``ASYA_MAX_DELIVERIES``.
    """


class TransportError(InfrastructureError):
    """A broker operation failed: lost connection, publish not confirmed in time, nack."""


class StorageError(InfrastructureError):
    """The object store is unreachable or refused a write for a reason that may pass."""


class TransportFeatureNotSupported(AsyaError):
    """The chosen transport cannot do what was asked (e.g. delayed publish)."""
