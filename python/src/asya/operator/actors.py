"""One actor's reconcile and observe steps: read the world, call the pure rules, write.

``handlers`` (kopf) calls ``reconcile`` on create/update/resume and ``observe`` on the
timer. Both return an ``Observation``; turning it into status is pure
(``reconciling.status``). Children are written only when their fingerprint changed, so
an unchanged actor costs reads, never writes.

A queue the broker cannot create is not a kopf retry (each of those writes progress
annotations): the reconcile reports it and finishes, and the timer tries again from
memory, backing off per actor (``OperatorSettings.retry_after``) until the broker answers.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import time
from collections.abc import Mapping
from typing import Any

from asya.operator import config as configs
from asya.operator import kube, provisioning, reconciling
from asya.operator.reconciling import specs, status
from asya.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

SCALING_KINDS = ("ScaledObject", "TriggerAuthentication")
REPLICAS_MANAGER = "asya-operator-replicas"
"""Field manager that only ever shares ``spec.replicas`` of a workload while scaling is on."""


def load_runtime_source() -> str:
    """The stdlib-only runtime file shipped in the ``asya.runtime`` package."""
    return importlib.resources.files("asya.runtime").joinpath("server.py").read_text(encoding="utf-8")


@dataclasses.dataclass
class OperatorState:
    """Everything handlers share, built once at start-up (kept in kopf's memo)."""

    settings: OperatorSettings
    config: configs.OperatorConfig
    kube: kube.KubeClient
    queues: provisioning.Queues
    runtime_source: str
    queue_checked: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    """When each actor's queue was last ensured (monotonic); a missing key means due now."""
    queue_failures: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """Consecutive failed ensures per actor; sets the backoff before the next attempt."""


class RetryLater(Exception):
    """The reconcile hit a temporary problem; status is written, kopf should retry."""


def _unknown_transport(actor: specs.ActorSpec, cfg: configs.OperatorConfig) -> status.Problem:
    declared = ", ".join(sorted(cfg.transports)) or "none"
    return status.Problem(
        "UnknownTransport",
        f"transport {actor.transport!r} is not declared in the operator configuration (declared: {declared}); "
        "fix spec.transport or add the transport to the operator's Helm values",
    )


def parse(body: Mapping[str, Any], state: OperatorState) -> tuple[specs.ActorSpec | None, status.Observation]:
    """Parse the body; on a spec problem return (None, an observation carrying it)."""
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    queue = f"asya-{meta.get('name', '')}"
    try:
        actor = specs.parse_actor(body)
    except specs.SpecError as exc:
        return None, status.Observation(generation, queue, spec_problem=status.Problem("InvalidSpec", str(exc)))
    if actor.transport not in state.config.transports:
        return None, status.Observation(generation, queue, spec_problem=_unknown_transport(actor, state.config))
    return actor, status.Observation(generation, queue)


def _queue_check_due(state: OperatorState, key: tuple[str, str]) -> bool:
    failures = state.queue_failures.get(key, 0)
    wait = state.settings.retry_after(failures) if failures else state.settings.queue_check_interval_s
    return time.monotonic() - state.queue_checked.get(key, 0.0) >= wait


async def _ensure_queue(state: OperatorState, actor: specs.ActorSpec) -> status.Problem | None:
    """Create the actor's queue and keep count of consecutive failures for the backoff."""
    key = (actor.namespace, actor.name)
    problem = await state.queues.ensure(actor.transport, actor.queue)
    state.queue_checked[key] = time.monotonic()
    if problem is None:
        if state.queue_failures.pop(key, 0):
            log.info("queue %s of %s/%s is provisioned again", actor.queue, actor.namespace, actor.name)
        return None
    failures = state.queue_failures.get(key, 0) + 1
    state.queue_failures[key] = failures
    # one INFO line per outage and actor; the retries themselves only at DEBUG
    log.log(
        logging.INFO if failures == 1 else logging.DEBUG,
        "%s/%s: %s (attempt %d, next in %.0f s)",
        actor.namespace,
        actor.name,
        problem.message,
        failures,
        state.settings.retry_after(failures),
    )
    return problem


async def _apply_if_changed(state: OperatorState, actor: specs.ActorSpec, manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest["metadata"]
    current = await state.kube.get(manifest["kind"], meta["namespace"], meta["name"])
    wanted = meta["annotations"][reconciling.HASH_ANNOTATION]
    if current is None:
        return await state.kube.apply(reconciling.workload.creation_manifest(actor, manifest))
    have = ((current.get("metadata") or {}).get("annotations") or {}).get(reconciling.HASH_ANNOTATION)
    if have == wanted:
        return current
    if _replicas_only_ours(state, current, manifest):
        await _hand_over_replicas(state, current)
    return await state.kube.apply(manifest)


def _replicas_only_ours(state: OperatorState, current: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """The next apply leaves out a ``replicas`` that nobody but our apply owns (it would be deleted).

    True right after a creation at ``minReplicas`` and when scaling was switched on; false
    once the autoscaler has set a count (its write took the field over).
    """
    if manifest["kind"] not in reconciling.workload.WORKLOAD_KINDS or "replicas" in manifest["spec"]:
        return False
    if "replicas" not in (current.get("spec") or {}):
        return False
    return kube.field_owners(current, "spec", "replicas") == {(state.kube.field_manager, "Apply")}


async def _hand_over_replicas(state: OperatorState, current: Mapping[str, Any]) -> None:
    """Let a second field manager share the current count, so our next apply does not delete it."""
    try:
        await state.kube.apply(
            reconciling.workload.replicas_handover(current), field_manager=REPLICAS_MANAGER, force=False
        )
    except kube.KubeError as exc:
        if exc.status != 409:  # 409: someone (the autoscaler) has just set another count; it owns it
            raise


def _is_rejection(exc: kube.KubeError) -> bool:
    """The object itself is invalid (not a passing API problem).

    Server-side apply reports some invalid values (e.g. a malformed resource quantity) as
    HTTP 500 "failed to convert ... to proper version" rather than 422.
    """
    return exc.status in (400, 422) or (exc.status == 500 and "to convert" in str(exc))


async def _remove_scaling(state: OperatorState, actor: specs.ActorSpec) -> None:
    """Scaling switched off: delete the ScaledObject/TriggerAuthentication if they exist."""
    for kind in SCALING_KINDS:
        name = actor.name if kind == "ScaledObject" else reconciling.scaling.auth_name(actor)
        try:
            if await state.kube.get(kind, actor.namespace, name) is not None:
                await state.kube.delete(kind, actor.namespace, name)
        except kube.KubeError as exc:
            if exc.status != 404:  # 404 on the type itself: KEDA not installed, nothing to remove
                raise


def _keda_missing(exc: kube.KubeError) -> status.Problem:
    return status.Problem(
        "KedaMissing", f"KEDA is not installed in this cluster ({exc}); install KEDA or disable scaling"
    )


async def _apply_scaling(
    state: OperatorState, actor: specs.ActorSpec, transport: configs.TransportConfig
) -> status.Problem | None:
    """Timer: write the KEDA objects of an actor that found no KEDA, so installing KEDA later is enough."""
    children, problem = reconciling.desired_children(actor, transport, state.config, state.runtime_source)
    if problem is not None:
        return problem
    try:
        _, problem = await _apply_children(state, actor, [m for m in children if m["kind"] in SCALING_KINDS])
    except kube.KubeError as exc:
        log.info("%s/%s: writing the KEDA objects failed, next tick retries: %s", actor.namespace, actor.name, exc)
        return status.Problem("KedaMissing", f"writing the KEDA objects failed ({exc}); retrying")
    if problem is None:
        log.info("%s/%s: KEDA is there now; ScaledObject written", actor.namespace, actor.name)
    return problem


async def _apply_children(
    state: OperatorState, actor: specs.ActorSpec, children: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], status.Problem | None]:
    """Write each child that changed; the KEDA types missing from the API stop the loop as a scaling problem."""
    applied: dict[str, dict[str, Any]] = {}
    for manifest in children:
        try:
            applied[manifest["kind"]] = await _apply_if_changed(state, actor, manifest)
        except kube.KubeError as exc:
            if manifest["kind"] not in SCALING_KINDS or exc.status != 404:
                raise
            return applied, _keda_missing(exc)
    return applied, None


async def reconcile(body: Mapping[str, Any], state: OperatorState) -> status.Observation:
    """Bring the actor's queue and children to the spec; raise ``RetryLater`` on temporary trouble."""
    actor, obs = parse(body, state)
    if actor is None:
        return obs
    transport = state.config.transports[actor.transport]
    try:
        children, scaling_problem = reconciling.desired_children(actor, transport, state.config, state.runtime_source)
    except specs.SpecError as exc:
        return status.Observation(actor.generation, actor.queue, status.Problem("InvalidSpec", str(exc)))
    queue_problem = await _ensure_queue(state, actor)  # a spec change always tries now, backoff or not
    try:
        applied, keda_problem = await _apply_children(state, actor, children)
        scaling_problem = keda_problem or scaling_problem
        if not actor.scaling.enabled and actor.generation > 1:  # generation 1: scaling was never on
            await _remove_scaling(state, actor)
    except kube.KubeError as exc:
        if _is_rejection(exc):  # the API refuses what the template produced: only a spec change helps
            problem = status.Problem(
                "WorkloadRejected",
                f"the API refused a child of this actor ({exc}); fix spec.workload.template or spec.sidecar",
            )
            return status.Observation(actor.generation, actor.queue, problem)
        raise RetryLater(f"writing the children of {actor.namespace}/{actor.name} failed: {exc}") from exc
    depth = await state.queues.depth(actor.transport, actor.queue) if queue_problem is None else None
    return status.Observation(
        generation=actor.generation,
        queue=actor.queue,
        transport_type=transport.type,
        scaling_enabled=actor.scaling.enabled,
        fixed_replicas=actor.replicas,
        queue_problem=queue_problem,
        queue_depth=depth,
        workload=applied.get(actor.workload_type),
        scaling_problem=scaling_problem,
    )


async def observe(body: Mapping[str, Any], state: OperatorState) -> status.Observation | None:
    """Timer tick: re-read workload and queue depth, re-create a vanished queue now and then.

    None when the actor is not in a state a tick should report on (spec problems are
    reported by the reconcile; a pending reconcile reports itself).
    """
    actor, _ = parse(body, state)
    if actor is None:
        return None
    transport = state.config.transports[actor.transport]
    key = (actor.namespace, actor.name)
    queue_problem = None
    if _queue_check_due(state, key):
        queue_problem = await _ensure_queue(state, actor)
    else:
        prior = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
        q = prior.get(status.QUEUE_READY) or {}
        if q.get("status") == "False":
            queue_problem = status.Problem(str(q.get("reason", "")), str(q.get("message", "")))
    workload = await state.kube.get(actor.workload_type, actor.namespace, actor.name)
    prior_scaling = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}.get(
        status.SCALING_READY
    ) or {}
    scaling_problem = None
    if actor.scaling.enabled and prior_scaling.get("status") == "False":
        scaling_problem = status.Problem(str(prior_scaling.get("reason")), str(prior_scaling.get("message")))
        if scaling_problem.reason == "KedaMissing":
            scaling_problem = await _apply_scaling(state, actor, transport)
    depth = await state.queues.depth(actor.transport, actor.queue) if queue_problem is None else None
    return status.Observation(
        generation=actor.generation,
        queue=actor.queue,
        transport_type=transport.type,
        queue_problem=queue_problem,
        queue_depth=depth,
        workload=workload,
        scaling_enabled=actor.scaling.enabled,
        scaling_problem=scaling_problem,
        fixed_replicas=actor.replicas,
    )


async def delete_queue(body: Mapping[str, Any], state: OperatorState) -> status.Problem | None:
    """Deletion policy Delete: remove the actor's queue (children go by ownerReferences)."""
    actor, _ = parse(body, state)
    key = (str(body["metadata"].get("namespace")), str(body["metadata"].get("name")))
    state.queue_checked.pop(key, None)
    state.queue_failures.pop(key, None)
    if actor is None or not actor.delete_queue:
        return None
    return await state.queues.delete(actor.transport, actor.queue)
