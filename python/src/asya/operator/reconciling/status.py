"""Observations -> AsyncActor status, and the minimal patch to get there (pure functions).

Handlers collect what they saw (queue provisioned?, workload object, scaling applied?,
errors) into an ``Observation``; ``compute_status`` turns it into conditions QueueReady,
WorkloadReady, ScalingReady and Ready (plus the informational SpecAsWritten, read from the
workload's ``asya.sh/spec-notices`` annotation) and the printer-column fields;
``status_patch`` returns only the keys that differ from the stored status, so an unchanged
actor costs no API write. A condition keeps its ``lastTransitionTime`` while its status does not change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

QUEUE_READY = "QueueReady"
WORKLOAD_READY = "WorkloadReady"
SCALING_READY = "ScalingReady"
READY = "Ready"
SPEC_AS_WRITTEN = "SpecAsWritten"
"""Informational (never part of Ready): False lists spec settings not used as written."""
CONDITION_TYPES = (QUEUE_READY, WORKLOAD_READY, SCALING_READY, READY, SPEC_AS_WRITTEN)
NOTICES_ANNOTATION = "asya.sh/spec-notices"
"""On the rendered workload: the ``compat`` notices, one per line (the status reads them back)."""

MANAGED_KEYS = (
    "observedGeneration",
    "status",
    "ready",
    "replicas",
    "readyReplicas",
    "desiredReplicas",
    "queue",
    "queueDepth",
    "transportType",
    "lastError",
    "conditions",
)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something that stops a part of the actor, in words a person can act on."""

    reason: str
    """CamelCase machine reason (UnknownTransport, QueueUnavailable, ...)."""
    message: str
    """What is wrong and what to do."""


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one reconcile or timer tick saw."""

    generation: int
    """metadata.generation of the actor that was reconciled."""
    queue: str
    """The actor's queue name."""
    spec_problem: Problem | None = None
    """The spec or transport cannot be used at all; nothing else was tried."""
    transport_type: str = ""
    """local | rabbitmq | sqs, when the transport is known."""
    queue_problem: Problem | None = None
    """Queue provisioning failed."""
    queue_depth: int | None = None
    """Messages waiting, when the transport could tell."""
    workload: Mapping[str, Any] | None = None
    """The workload object as last read or applied (with its status)."""
    scaling_enabled: bool = False
    """spec.scaling.enabled."""
    scaling_problem: Problem | None = None
    """ScaledObject could not be provided."""
    fixed_replicas: int = 1
    """spec.replicas, used when scaling is disabled."""


def _condition(ctype: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": ctype, "status": "True" if ok else "False", "reason": reason, "message": message}


def _workload_condition(obs: Observation) -> tuple[dict[str, Any], int, int, int]:
    """(condition, replicas, readyReplicas, desiredReplicas)."""
    wl = obs.workload
    if wl is None:
        return _condition(WORKLOAD_READY, False, "NotCreated", "the workload does not exist yet"), 0, 0, 0
    spec = wl.get("spec") or {}
    st = wl.get("status") or {}
    desired = int(spec.get("replicas", 1) if "replicas" in spec else obs.fixed_replicas)
    replicas = int(st.get("replicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    kind = wl.get("kind", "workload")
    gen = int((wl.get("metadata") or {}).get("generation") or 0)
    seen = int(st.get("observedGeneration") or 0)
    if seen < gen:
        cond = _condition(WORKLOAD_READY, False, "RollingOut", f"{kind} generation {gen} not yet rolled out")
    elif desired == 0:
        cond = _condition(WORKLOAD_READY, True, "ScaledToZero", "no replicas wanted (queue empty or replicas=0)")
    elif ready >= desired:
        cond = _condition(WORKLOAD_READY, True, "ReplicasReady", f"{ready}/{desired} replicas ready")
    else:
        cond = _condition(
            WORKLOAD_READY, False, "ReplicasNotReady", f"{ready}/{desired} replicas ready; see the pods' events"
        )
    return cond, replicas, ready, desired


def compute_status(obs: Observation, old: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The full desired status (managed keys only; ``None`` = remove the key)."""
    old = old or {}
    if obs.spec_problem is not None:
        p = obs.spec_problem
        conds = [
            _condition(QUEUE_READY, False, p.reason, p.message),
            _condition(WORKLOAD_READY, False, p.reason, "not reconciled: fix the spec first"),
            _condition(SCALING_READY, False, p.reason, "not reconciled: fix the spec first"),
            _condition(READY, False, p.reason, p.message),
        ]
        return _finish(obs, old, now, conds, "Error", p.message, (0, 0, 0))
    if obs.queue_problem is not None:
        qcond = _condition(QUEUE_READY, False, obs.queue_problem.reason, obs.queue_problem.message)
    else:
        qcond = _condition(QUEUE_READY, True, "QueueProvisioned", f"{obs.queue} and its dead-letter queue exist")
    wcond, replicas, ready, desired = _workload_condition(obs)
    if not obs.scaling_enabled:
        scond = _condition(SCALING_READY, True, "FixedReplicas", f"autoscaling off; {obs.fixed_replicas} replicas")
    elif obs.scaling_problem is not None:
        scond = _condition(SCALING_READY, False, obs.scaling_problem.reason, obs.scaling_problem.message)
    else:
        scond = _condition(SCALING_READY, True, "ScaledObjectApplied", "KEDA ScaledObject is in place")
    parts = [qcond, wcond, scond]
    failing = [c for c in parts if c["status"] != "True"]
    if failing:
        rcond = _condition(READY, False, failing[0]["reason"], failing[0]["message"])
    else:
        rcond = _condition(READY, True, "ActorReady", "queue, workload and scaling are ready")
    problems = [p for p in (obs.queue_problem, obs.scaling_problem) if p is not None]
    last_error = "; ".join(p.message for p in problems) or None
    phase = "Error" if problems else ("Ready" if not failing else "Pending")
    conds = [*parts, rcond]
    if obs.workload is not None:  # the notices travel on the workload, so timer ticks see them too
        conds.append(_notices_condition(obs.workload))
    return _finish(obs, old, now, conds, phase, last_error, (replicas, ready, desired))


def _notices_condition(wl: Mapping[str, Any]) -> dict[str, Any]:
    text = str(((wl.get("metadata") or {}).get("annotations") or {}).get(NOTICES_ANNOTATION) or "")
    notices = [line for line in text.splitlines() if line.strip()]
    if not notices:
        return _condition(SPEC_AS_WRITTEN, True, "AsWritten", "every setting of the spec is used as written")
    return _condition(SPEC_AS_WRITTEN, False, "SettingsOverridden", "; ".join(notices))


def _finish(
    obs: Observation,
    old: Mapping[str, Any],
    now: str,
    conds: list[dict[str, Any]],
    phase: str,
    last_error: str | None,
    counts: tuple[int, int, int],
) -> dict[str, Any]:
    previous = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, Mapping)}
    for cond in conds:
        before = previous.get(cond["type"])
        same = before is not None and before.get("status") == cond["status"]
        cond["lastTransitionTime"] = before.get("lastTransitionTime", now) if same and before else now
        cond["observedGeneration"] = obs.generation
    replicas, ready, desired = counts
    return {
        "observedGeneration": obs.generation,
        "status": phase,
        "ready": f"{ready}/{desired}",
        "replicas": replicas,
        "readyReplicas": ready,
        "desiredReplicas": desired,
        "queue": obs.queue,
        "queueDepth": obs.queue_depth if obs.queue_depth is not None else old.get("queueDepth"),
        "transportType": obs.transport_type or None,
        "lastError": last_error,
        "conditions": conds,
    }


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Keys of ``new`` that differ from ``old`` (``None`` deletes); empty = nothing to write."""
    old = old or {}
    return {k: v for k, v in new.items() if old.get(k) != v}
