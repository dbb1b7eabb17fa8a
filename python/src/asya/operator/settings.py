"""Operator settings, parsed once from the environment at start-up.

Process-level knobs only; what the operator *manages* (transports, sidecar defaults)
comes from the configuration file named here (``asya.operator.config``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """How the operator process runs."""

    config_path: Path = Path("/etc/asya/operator.yaml")
    """The transports/sidecar configuration file (ASYA_OPERATOR_CONFIG)."""
    namespaces: tuple[str, ...] = ()
    """Namespaces (globs allowed) to watch; empty = the whole cluster (ASYA_OPERATOR_NAMESPACES, comma list)."""
    status_interval_s: float = 10.0
    """Seconds between status refreshes (queue depth, replicas) per actor (ASYA_OPERATOR_STATUS_INTERVAL_S)."""
    queue_check_interval_s: float = 60.0
    """Seconds between checks that re-create a vanished queue (ASYA_OPERATOR_QUEUE_CHECK_S)."""
    retry_delay_s: float = 15.0
    """Seconds before the first retry after a temporary error (an unreachable broker, a failed API
    write); each further failure doubles it (ASYA_OPERATOR_RETRY_DELAY_S)."""
    retry_max_delay_s: float = 300.0
    """Cap of that doubling (ASYA_OPERATOR_RETRY_MAX_DELAY_S)."""
    field_manager: str = "asya-operator"
    """Server-side-apply field manager name."""
    liveness_endpoint: str = ""
    """kopf liveness URL, e.g. http://0.0.0.0:8081/healthz; empty = off (ASYA_OPERATOR_LIVENESS)."""
    crash_after_writes: int = 0
    """Fault injection for tests: exit abruptly after this many child writes; 0 = never
    (ASYA_OPERATOR_CRASH_AFTER_WRITES)."""

    def retry_after(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failures of one actor's step."""
        # the exponent is bounded so a broker that stays down for weeks cannot overflow the float
        return min(self.retry_max_delay_s, self.retry_delay_s * 2.0 ** min(max(failures, 1) - 1, 30))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Build settings from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            config_path=Path(env.get("ASYA_OPERATOR_CONFIG", str(d.config_path))),
            namespaces=tuple(n.strip() for n in env.get("ASYA_OPERATOR_NAMESPACES", "").split(",") if n.strip()),
            status_interval_s=float(env.get("ASYA_OPERATOR_STATUS_INTERVAL_S", d.status_interval_s)),
            queue_check_interval_s=float(env.get("ASYA_OPERATOR_QUEUE_CHECK_S", d.queue_check_interval_s)),
            retry_delay_s=float(env.get("ASYA_OPERATOR_RETRY_DELAY_S", d.retry_delay_s)),
            retry_max_delay_s=float(env.get("ASYA_OPERATOR_RETRY_MAX_DELAY_S", d.retry_max_delay_s)),
            liveness_endpoint=env.get("ASYA_OPERATOR_LIVENESS", ""),
            crash_after_writes=int(env.get("ASYA_OPERATOR_CRASH_AFTER_WRITES", "0")),
        )
