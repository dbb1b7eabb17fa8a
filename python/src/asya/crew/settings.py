"""Configuration of the crew actors, parsed once from the environment.

``python -m asya.crew <actor>`` calls ``CrewSettings.from_env()`` at start-up;
``asya dev run`` and the Helm chart set the variables. Nothing below the edge
reads ``os.environ``: tests build the dataclasses directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from asya.contracts import HAPPY_END
from asya.contracts.errors import ErrorCode
from asya.engine import aliases
from asya.engine.settings import DEFAULT_MAX_DELIVERIES, EngineSettings
from asya.storage.settings import S3Settings
from asya.transports import TransportSettings

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
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    """Sidecar deliveries after which a ``connection_error`` counts as a crash loop (non-retryable)."""


@dataclasses.dataclass(frozen=True)
class CrewSettings:
    """Everything an end actor process needs to run; ``engine(actor)`` gives the shared part."""

    transport: str = "local"
    """Transport kind: ``local``, ``rabbitmq`` or ``sqs``."""
    transport_url: str = ""
    """Broker address (AMQP URL, SQS endpoint, or the local transport's directory)."""
    transport_options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """``ASYA_TRANSPORT_OPT_*`` extras, the same the sidecars get (e.g. RabbitMQ ``queue_type``)."""
    storage_url: str = ""
    """``file:///abs/dir`` or ``s3://bucket/prefix``: where results and dead letters go."""
    s3: S3Settings = dataclasses.field(default_factory=S3Settings)
    """S3 connection details."""
    gateway_url: str | None = None
    """Gateway base URL; when set, end actors report succeeded/failed to it."""
    prefetch: int = 16
    """Envelopes processed concurrently (and unacknowledged at most)."""
    health_port: int | None = None
    """Port of the ``/healthz``, ``/readyz``, ``/metrics`` server; None disables it."""
    visibility_timeout_s: float = 60.0
    """Lease of a received message on local/sqs, seconds; crew work is short."""
    publish_timeout_s: float = 30.0
    """Longest wait for the broker to confirm a publish, seconds."""
    shutdown_grace_s: float = 25.0
    """On SIGTERM, how long in-flight envelopes may take to finish, seconds."""
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    """A message delivered more often than this is dead-lettered with reason ``delivery_limit``."""
    store_retry_max_s: float = 30.0
    """happy-end's longest pause between attempts to store a result while the store is down, seconds."""
    retry: RetrySettings = dataclasses.field(default_factory=RetrySettings)
    """error-end's retry policy."""
    gateway_token: str = dataclasses.field(default="", repr=False)
    """The gateway's report token (``ASYA_GATEWAY_TOKEN``); never printed."""
    report_retry_s: float = 60.0
    """How long a report the gateway did not take is retried before it is dropped (``ASYA_REPORT_RETRY_S``)."""

    def engine(self, actor: str) -> EngineSettings:
        """The consumer-engine settings of end actor ``actor``."""
        return EngineSettings(
            actor=actor,
            transport=TransportSettings(
                kind=self.transport,
                url=self.transport_url,
                region=self.s3.region,
                visibility_timeout_s=self.visibility_timeout_s,
                publish_timeout_s=self.publish_timeout_s,
                options=dict(self.transport_options),
            ),
            prefetch=self.prefetch,
            max_deliveries=self.max_deliveries,
            graceful_shutdown_s=self.shutdown_grace_s,
            http_port=self.health_port or 0,
            gateway_url=self.gateway_url or "",
            gateway_token=self.gateway_token,
            report_retry_s=self.report_retry_s,
            storage_url=self.storage_url,
            s3=self.s3,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CrewSettings:
        """Read ``ASYA_*`` and ``AWS_*`` variables (the shared ones through ``EngineSettings``)."""
        e = aliases.resolve(os.environ if env is None else env)
        shared = EngineSettings.from_env(e, actor=HAPPY_END)
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
            max_deliveries=shared.max_deliveries,
        )
        return cls(
            transport=shared.transport.kind,
            transport_url=shared.transport.url,
            transport_options=dict(shared.transport.options),
            storage_url=shared.storage_url,
            s3=shared.s3,
            gateway_url=shared.gateway_url or None,
            gateway_token=shared.gateway_token,
            report_retry_s=shared.report_retry_s,
            prefetch=shared.prefetch,
            health_port=shared.http_port or None,
            visibility_timeout_s=shared.transport.visibility_timeout_s,
            publish_timeout_s=shared.transport.publish_timeout_s,
            shutdown_grace_s=shared.graceful_shutdown_s,
            max_deliveries=shared.max_deliveries,
            store_retry_max_s=float(e.get("ASYA_STORE_RETRY_MAX_S", 30.0)),
            retry=retry,
        )
