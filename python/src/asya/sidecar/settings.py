"""Sidecar settings, parsed once from the environment at start-up.

The operator (or ``asya dev run``) sets these variables on the sidecar
container; nothing else in the sidecar reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from asya.contracts import headers, protocol, validate_actor_name
from asya.transports import TransportSettings


@dataclasses.dataclass(frozen=True)
class SidecarSettings:
    """Everything one sidecar needs to serve one actor."""

    actor: str
    """Actor name; the sidecar consumes queue ``asya-<actor>``."""
    transport: TransportSettings
    """Broker to consume from and publish to."""
    socket_dir: str = protocol.SOCKET_DIR_DEFAULT
    """Directory holding the runtime socket and ready file."""
    processing_timeout_s: float = 300.0
    """Longest a single runtime call may take before the envelope goes to error-end (seconds)."""
    prefetch: int = 16
    """Envelopes processed at once (also the broker prefetch): bounds memory and runtime load."""
    max_deliveries: int = 3
    """Deliveries after which an envelope whose runtime keeps dying goes to error-end."""
    graceful_shutdown_s: float = 25.0
    """On SIGTERM, how long in-flight envelopes may finish before they are given back (seconds)."""
    runtime_ready_timeout_s: float = 120.0
    """How long to wait for the runtime's ready file at start-up before giving up (seconds)."""
    http_port: int = 8080
    """Port of /healthz, /readyz and /metrics; 0 disables the HTTP server."""
    http_host: str = "0.0.0.0"
    """Address the HTTP server binds (127.0.0.1 in local dev)."""
    gateway_url: str = ""
    """Gateway base URL for progress reports; empty disables reporting."""
    storage_url: str = ""
    """Object store for the claim check (``file:///dir`` or ``s3://bucket/prefix``); empty disables it."""
    claim_check_bytes: int = 256 * 1024
    """Envelopes larger than this (bytes) travel with their payload in the store (SQS's limit by default)."""
    retry_defaults: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """This actor's retry budget, stamped into error-end messages as ``x-asya-retry-*`` headers
    (from ASYA_RETRY_MAX_ATTEMPTS / _BACKOFF_BASE_S / _BACKOFF_MAX_S; empty = error-end's defaults)."""
    end_actors: frozenset[str] = frozenset({"happy-end", "error-end"})
    """Actors the sidecar routes to by name when a route finishes or fails."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SidecarSettings:
        e = os.environ if env is None else env
        actor = validate_actor_name(e.get("ASYA_ACTOR", ""), "ASYA_ACTOR")
        options = {
            k.removeprefix("ASYA_TRANSPORT_OPT_").lower(): v
            for k, v in e.items()
            if k.startswith("ASYA_TRANSPORT_OPT_")
        }
        timeout = float(e.get("ASYA_PROCESSING_TIMEOUT_S", "300"))
        transport = TransportSettings(
            kind=e.get("ASYA_TRANSPORT", "local"),
            url=e.get("ASYA_TRANSPORT_URL", ""),
            region=e.get("AWS_REGION", e.get("AWS_DEFAULT_REGION", "us-east-1")),
            # A lease shorter than the processing time would hand the envelope to a second consumer.
            visibility_timeout_s=max(float(e.get("ASYA_VISIBILITY_TIMEOUT_S", "60")), 1.0),
            options=options,
        )
        return cls(
            actor=actor,
            transport=transport,
            socket_dir=e.get("ASYA_SOCKET_DIR", protocol.SOCKET_DIR_DEFAULT),
            processing_timeout_s=timeout,
            prefetch=max(int(e.get("ASYA_PREFETCH", "16")), 1),
            max_deliveries=max(int(e.get("ASYA_MAX_DELIVERIES", "3")), 1),
            graceful_shutdown_s=float(e.get("ASYA_GRACEFUL_SHUTDOWN_S", "25")),
            runtime_ready_timeout_s=float(e.get("ASYA_RUNTIME_READY_TIMEOUT_S", "120")),
            http_port=int(e.get("ASYA_HTTP_PORT", "8080")),
            http_host=e.get("ASYA_HTTP_HOST", "0.0.0.0"),
            gateway_url=e.get("ASYA_GATEWAY_URL", "").rstrip("/"),
            storage_url=e.get("ASYA_STORAGE_URL", ""),
            retry_defaults={
                header: float(e[var])
                for var, header in (
                    ("ASYA_RETRY_MAX_ATTEMPTS", headers.RETRY_MAX),
                    ("ASYA_RETRY_BACKOFF_BASE_S", headers.RETRY_BACKOFF_BASE_S),
                    ("ASYA_RETRY_BACKOFF_MAX_S", headers.RETRY_BACKOFF_MAX_S),
                )
                if e.get(var)
            },
            claim_check_bytes=int(e.get("ASYA_CLAIM_CHECK_BYTES", str(256 * 1024))),
        )
