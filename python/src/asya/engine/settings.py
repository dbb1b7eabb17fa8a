"""Settings every consumer process shares, parsed once from the environment.

The sidecar and the crew's end actors are both "an engine plus a processor";
this module reads the variables they have in common (transport and its
``ASYA_TRANSPORT_OPT_*`` options, concurrency, delivery limit, shutdown grace,
probes port, gateway, storage, end-actor names). Each processor's own settings
module adds its variables on top and nothing below the entry points reads
``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from asya.contracts import DLQ_NAME, ERROR_END, HAPPY_END, validate_actor_name
from asya.engine import aliases
from asya.storage.settings import S3Settings
from asya.transports import TransportSettings

DEFAULT_MAX_DELIVERIES = 5


def transport_options(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``ASYA_TRANSPORT_OPT_<NAME>=value`` variables as ``{name: value}`` (every process on a broker needs the same)."""
    e = os.environ if env is None else env
    return {
        k.removeprefix("ASYA_TRANSPORT_OPT_").lower(): v for k, v in e.items() if k.startswith("ASYA_TRANSPORT_OPT_")
    }


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """What the consumer engine needs to serve one queue."""

    actor: str
    """The actor whose queue ``asya-<actor>`` this process consumes."""
    transport: TransportSettings = dataclasses.field(default_factory=TransportSettings)
    """Broker to consume from and publish to."""
    prefetch: int = 16
    """Deliveries processed at once (also the broker prefetch)."""
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    """A message delivered more often than this, for whatever reason, is dead-lettered (``delivery_limit``)."""
    graceful_shutdown_s: float = 25.0
    """On SIGTERM, how long in-flight deliveries may finish before they are given back (seconds)."""
    http_host: str = "0.0.0.0"
    """Address of the /healthz, /readyz, /metrics server."""
    http_port: int = 0
    """Port of that server; 0 disables it."""
    gateway_url: str = ""
    """Gateway base URL for progress and final reports and the cancellation feed; empty disables all three."""
    gateway_token: str = dataclasses.field(default="", repr=False)
    """Bearer token for the gateway's internal endpoints (``ASYA_GATEWAY_TOKEN``); never printed."""
    cancel_poll_s: float = 0.5
    """How often the cancellation feed is polled (seconds): the bound on cancel-to-drop latency."""
    cancel_ttl_s: float = 3600.0
    """How long a cancelled job id is remembered (seconds); bounds the set's memory."""
    report_retry_s: float = 60.0
    """How long a report the gateway did not take is retried in the background before it is dropped (seconds)."""
    storage_url: str = ""
    """Object store (``file:///dir`` or ``s3://bucket/prefix``); empty means none."""
    s3: S3Settings = dataclasses.field(default_factory=S3Settings)
    """How to reach S3 when ``storage_url`` is ``s3://``."""
    happy_end: str = HAPPY_END
    """Actor that receives finished envelopes."""
    error_end: str = ERROR_END
    """Actor that receives failures."""
    dlq: str = DLQ_NAME
    """Queue of dead letters."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, actor: str | None = None, http_port: int = 0
    ) -> EngineSettings:
        """Read the shared ``ASYA_*`` variables; ``actor`` overrides ``ASYA_ACTOR`` (crew processes)."""
        e = aliases.resolve(os.environ if env is None else env)
        name = validate_actor_name(actor if actor is not None else e.get("ASYA_ACTOR", ""), "ASYA_ACTOR")
        transport = transport_from_env(e)
        port = e.get("ASYA_HTTP_PORT", e.get("ASYA_HEALTH_PORT", ""))
        return cls(
            actor=name,
            transport=transport,
            prefetch=max(int(e.get("ASYA_PREFETCH", "16")), 1),
            max_deliveries=max(int(e.get("ASYA_MAX_DELIVERIES", str(DEFAULT_MAX_DELIVERIES))), 1),
            graceful_shutdown_s=float(e.get("ASYA_GRACEFUL_SHUTDOWN_S", e.get("ASYA_SHUTDOWN_GRACE_S", "25"))),
            http_host=e.get("ASYA_HTTP_HOST", "0.0.0.0"),
            http_port=int(port) if port else http_port,
            gateway_url=e.get("ASYA_GATEWAY_URL", "").rstrip("/"),
            gateway_token=e.get("ASYA_GATEWAY_TOKEN", ""),
            cancel_poll_s=max(float(e.get("ASYA_CANCEL_POLL_S", "0.5")), 0.05),
            cancel_ttl_s=max(float(e.get("ASYA_CANCEL_TTL_S", "3600")), 1.0),
            report_retry_s=max(float(e.get("ASYA_REPORT_RETRY_S", "60")), 0.0),
            storage_url=e.get("ASYA_STORAGE_URL", ""),
            s3=S3Settings.from_env(e),
            happy_end=validate_actor_name(e.get("ASYA_HAPPY_END_ACTOR", HAPPY_END), "ASYA_HAPPY_END_ACTOR"),
            error_end=validate_actor_name(e.get("ASYA_ERROR_END_ACTOR", ERROR_END), "ASYA_ERROR_END_ACTOR"),
            dlq=e.get("ASYA_DLQ_QUEUE", DLQ_NAME),
        )


def transport_from_env(e: Mapping[str, str]) -> TransportSettings:
    """The broker connection every Asya process reads the same way (``ASYA_TRANSPORT*``, AWS region)."""
    return TransportSettings(
        kind=e.get("ASYA_TRANSPORT", "local"),
        url=e.get("ASYA_TRANSPORT_URL", ""),
        region=e.get("AWS_REGION", e.get("AWS_DEFAULT_REGION", "us-east-1")),
        # A lease shorter than the processing time would hand the envelope to a second consumer.
        visibility_timeout_s=max(float(e.get("ASYA_VISIBILITY_TIMEOUT_S", "60")), 1.0),
        publish_timeout_s=float(e.get("ASYA_PUBLISH_TIMEOUT_S", "30")),
        options=transport_options(e),
    )
