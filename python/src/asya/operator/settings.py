"""Operator settings, parsed once from the environment at start-up.

Process-level knobs only; what the operator *manages* (transports, sidecar defaults)
comes from the configuration file named here (``asya.operator.config``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
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
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint; 0 = off (ASYA_OPERATOR_METRICS_PORT)."""
    crash_after_writes: int = 0
    """Fault injection for tests: exit abruptly after this many child writes; 0 = never
    (ASYA_OPERATOR_CRASH_AFTER_WRITES)."""
    leader_election: bool = False
    """Reconcile only while holding a coordination.k8s.io Lease, so replicas > 1 are safe
    (ASYA_OPERATOR_LEADER_ELECTION; off when run from source, the Helm chart turns it on)."""
    lease_name: str = "asya-operator"
    """Name of that Lease (ASYA_OPERATOR_LEASE_NAME); the shipped RBAC grants only this name."""
    lease_namespace: str = "default"
    """Its namespace (ASYA_OPERATOR_LEASE_NAMESPACE, else POD_NAMESPACE, else default)."""
    identity: str = ""
    """Holder identity written into the Lease (POD_NAME, else hostname_pid)."""
    lease_duration_s: float = 15.0
    """How long a standby waits after the last renewal it saw before taking over
    (ASYA_OPERATOR_LEASE_DURATION_S; whole seconds in the Lease, at least 1)."""
    renew_deadline_s: float = 10.0
    """The leader exits when it could not renew for this long; must be below the lease
    duration so it stops before a standby can take over (ASYA_OPERATOR_RENEW_DEADLINE_S)."""
    retry_period_s: float = 2.0
    """Seconds between renewals, and between a standby's attempts (ASYA_OPERATOR_RETRY_PERIOD_S)."""
    manage_crds: bool = False
    """Server-side apply the packaged AsyncActor CRD at start, before watching
    (ASYA_OPERATOR_MANAGE_CRDS): Helm never upgrades crds/ (see docs/operator.md)."""

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
            metrics_port=int(env.get("ASYA_OPERATOR_METRICS_PORT", "0")),
            crash_after_writes=int(env.get("ASYA_OPERATOR_CRASH_AFTER_WRITES", "0")),
            leader_election=_flag(env, "ASYA_OPERATOR_LEADER_ELECTION"),
            lease_name=env.get("ASYA_OPERATOR_LEASE_NAME") or d.lease_name,
            lease_namespace=env.get("ASYA_OPERATOR_LEASE_NAMESPACE") or env.get("POD_NAMESPACE") or d.lease_namespace,
            identity=env.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}",
            lease_duration_s=float(env.get("ASYA_OPERATOR_LEASE_DURATION_S", d.lease_duration_s)),
            renew_deadline_s=float(env.get("ASYA_OPERATOR_RENEW_DEADLINE_S", d.renew_deadline_s)),
            retry_period_s=float(env.get("ASYA_OPERATOR_RETRY_PERIOD_S", d.retry_period_s)),
            manage_crds=_flag(env, "ASYA_OPERATOR_MANAGE_CRDS"),
        )

    def __post_init__(self) -> None:
        if self.leader_election and not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period_s} / {self.renew_deadline_s} / {self.lease_duration_s} s"
            )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be true or false, got {value!r}")
