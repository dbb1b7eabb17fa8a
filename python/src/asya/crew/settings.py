"""Configuration of the crew actors, parsed once from the environment.

``python -m asya.crew <actor>`` calls ``CrewSettings.from_env()`` at start-up;
``asya dev run`` and the Helm chart set the variables. Nothing below the edge
reads ``os.environ``: tests build the dataclasses directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from asya.contracts.errors import ErrorCode
from asya.storage.settings import S3Settings

_DEFAULT_NON_RETRYABLE = (ErrorCode.MSG_PARSING_ERROR.value, "validation_error", "ValidationError")


@dataclasses.dataclass(frozen=True)
class RetrySettings:
    """Defaults for error-end's retry policy; envelope headers may override the budget."""

    max_attempts: int = 3
    """Retries error-end schedules before dead-lettering (0 = never retry)."""
    backoff_base_s: float = 1.0
    """Delay before the first retry, seconds; doubles on each later retry."""
    backoff_max_s: float = 300.0
    """Ceiling of the backoff delay, seconds (SQS caps a single delay at 900)."""
    jitter: float = 0.2
    """Fraction of the delay randomised (+/-), so retries of a burst spread out."""
    non_retryable: frozenset[str] = frozenset(_DEFAULT_NON_RETRYABLE)
    """Error codes or exception type names that go to the DLQ at once."""
    max_deliveries: int = 3
    """Sidecar deliveries after which a ``connection_error`` counts as a crash loop (non-retryable)."""


@dataclasses.dataclass(frozen=True)
class CrewSettings:
    """Everything an end actor process needs to run."""

    transport: str = "local"
    """Transport kind: ``local``, ``rabbitmq`` or ``sqs``."""
    transport_url: str = ""
    """Broker address (AMQP URL, SQS endpoint, or the local transport's directory)."""
    storage_url: str = ""
    """``file:///abs/dir`` or ``s3://bucket/prefix``: where results and dead letters go."""
    s3: S3Settings = dataclasses.field(default_factory=S3Settings)
    """S3 connection details."""
    gateway_url: str | None = None
    """Gateway base URL; when set, end actors report succeeded/failed to it."""
    prefetch: int = 16
    """Envelopes processed concurrently (and unacknowledged at most)."""
    health_port: int | None = None
    """Port of the tiny ``/healthz`` + ``/readyz`` server; None disables it."""
    visibility_timeout_s: float = 60.0
    """Lease of a received message on local/sqs, seconds; crew work is short."""
    shutdown_grace_s: float = 25.0
    """On SIGTERM, how long in-flight envelopes may take to finish, seconds."""
    store_retry_max_s: float = 30.0
    """happy-end's longest pause before giving back a result it could not store (S3 down), seconds."""
    retry: RetrySettings = dataclasses.field(default_factory=RetrySettings)
    """error-end's retry policy."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CrewSettings:
        """Read ``ASYA_*`` and ``AWS_*`` variables; missing ones keep the defaults."""
        e = os.environ if env is None else env
        defaults = RetrySettings()
        non_retryable = e.get("ASYA_RETRY_NON_RETRYABLE")
        retry = RetrySettings(
            max_attempts=int(e.get("ASYA_RETRY_MAX_ATTEMPTS", defaults.max_attempts)),
            backoff_base_s=float(e.get("ASYA_RETRY_BACKOFF_BASE_S", defaults.backoff_base_s)),
            backoff_max_s=float(e.get("ASYA_RETRY_BACKOFF_MAX_S", defaults.backoff_max_s)),
            jitter=float(e.get("ASYA_RETRY_JITTER", defaults.jitter)),
            non_retryable=(
                frozenset(s.strip() for s in non_retryable.split(",") if s.strip())
                if non_retryable is not None
                else defaults.non_retryable
            ),
            max_deliveries=int(e.get("ASYA_MAX_DELIVERIES", defaults.max_deliveries)),
        )
        s3 = S3Settings.from_env(e)
        port = e.get("ASYA_HEALTH_PORT")
        return cls(
            transport=e.get("ASYA_TRANSPORT", "local"),
            transport_url=e.get("ASYA_TRANSPORT_URL", ""),
            storage_url=e.get("ASYA_STORAGE_URL", ""),
            s3=s3,
            gateway_url=e.get("ASYA_GATEWAY_URL") or None,
            prefetch=int(e.get("ASYA_PREFETCH", 16)),
            health_port=int(port) if port else None,
            visibility_timeout_s=float(e.get("ASYA_VISIBILITY_TIMEOUT_S", 60.0)),
            shutdown_grace_s=float(e.get("ASYA_SHUTDOWN_GRACE_S", 25.0)),
            store_retry_max_s=float(e.get("ASYA_STORE_RETRY_MAX_S", 30.0)),
            retry=retry,
        )
