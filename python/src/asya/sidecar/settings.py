"""Sidecar settings, parsed once from the environment at start-up.

The shared part (transport, concurrency, delivery limit, probes, gateway,
storage, end actors) is ``asya.engine.EngineSettings``; this adds what only a
runtime-backed actor needs. The operator (or ``asya dev run``) sets these
variables on the sidecar container; nothing else in the sidecar reads
``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from asya.contracts import headers, protocol
from asya.engine import aliases
from asya.engine.settings import EngineSettings

_RETRY_VARS = (
    ("ASYA_RETRY_MAX_ATTEMPTS", headers.RETRY_MAX),
    ("ASYA_RETRY_BACKOFF_BASE_S", headers.RETRY_BACKOFF_BASE_S),
    ("ASYA_RETRY_BACKOFF_MAX_S", headers.RETRY_BACKOFF_MAX_S),
)


@dataclasses.dataclass(frozen=True)
class SidecarSettings:
    """Everything one sidecar needs to serve one actor."""

    engine: EngineSettings
    """Queue, broker, concurrency, probes, reports: what every consumer shares."""
    socket_dir: str = protocol.SOCKET_DIR_DEFAULT
    """Directory holding the runtime socket and ready file."""
    processing_timeout_s: float = 300.0
    """Longest the handler may take for one envelope before it goes to error-end (seconds); publishing
    the outputs is bounded separately by the transport."""
    runtime_ready_timeout_s: float = 120.0
    """How long to wait for the runtime's ready file at start-up before giving up (seconds)."""
    claim_check_bytes: int = 256 * 1024
    """Envelopes larger than this (bytes) travel with their payload in the store (SQS's limit by default)."""
    retry_defaults: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """This actor's retry budget, stamped into error-end messages as ``x-asya-retry-*`` headers
    (from ASYA_RETRY_MAX_ATTEMPTS / _BACKOFF_BASE_S / _BACKOFF_MAX_S; empty = error-end's defaults)."""

    runtime_connections: int = 1
    """Calls sent at once to a runtime whose ready file advertises no features (Asya 0.1.x: it serves one
    connection at a time behind a listen backlog of 5); a runtime with features takes up to the prefetch."""
    runtime_refused_grace_s: float = 5.0
    """How long a runtime socket may refuse connections before the runtime counts as gone (seconds):
    long enough for a restarting runtime to bind again without the envelope being given back."""
    max_hops: int = 1000
    """Outputs an envelope may pass through (the ``x-asya-hops`` header); past it the envelope goes to
    error-end as ``hop_budget`` instead of looping forever (an envelope-mode handler that re-sends to itself)."""

    @property
    def actor(self) -> str:
        return self.engine.actor

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SidecarSettings:
        e = aliases.resolve(os.environ if env is None else env)
        return cls(
            engine=EngineSettings.from_env(e, http_port=8080),
            socket_dir=e.get("ASYA_SOCKET_DIR", protocol.SOCKET_DIR_DEFAULT),
            processing_timeout_s=float(e.get("ASYA_PROCESSING_TIMEOUT_S", "300")),
            runtime_ready_timeout_s=float(e.get("ASYA_RUNTIME_READY_TIMEOUT_S", "120")),
            retry_defaults={header: float(e[var]) for var, header in _RETRY_VARS if e.get(var)},
            claim_check_bytes=int(e.get("ASYA_CLAIM_CHECK_BYTES", str(256 * 1024))),
            runtime_connections=_positive_int(e, "ASYA_RUNTIME_CONNECTIONS", 1),
            runtime_refused_grace_s=float(e.get("ASYA_RUNTIME_REFUSED_GRACE_S", "5")),
            max_hops=_positive_int(e, "ASYA_MAX_HOPS", 1000),
        )


def _positive_int(e: Mapping[str, str], name: str, default: int) -> int:
    raw = e.get(name, "")
    value = int(raw) if raw.strip() else default
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {raw!r}")
    return value
