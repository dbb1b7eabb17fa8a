"""Spec -> desired KEDA ScaledObject and TriggerAuthentication (pure functions).

RabbitMQ scales on QueueLength of ``asya-<actor>``; SQS uses the aws-sqs-queue scaler.
Connection secrets reach KEDA through a TriggerAuthentication that points at the same
Secret the sidecars read (``secretTargetRef``), never as literal values. The local
transport has no KEDA scaler: ``ScalingError`` says so and the actor keeps fixed replicas.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from asya.operator import config as configs
from asya.operator.reconciling import specs, workload
from asya.transports import TransportSettings

Manifest = dict[str, Any]
KEDA_API = "keda.sh/v1alpha1"


class ScalingError(ValueError):
    """Autoscaling was asked for but cannot be provided; the message says why and what to do."""


def auth_name(actor: specs.ActorSpec) -> str:
    """Name of the actor's TriggerAuthentication."""
    return f"{actor.name}-asya"


def _trigger(
    actor: specs.ActorSpec, transport: configs.TransportConfig
) -> tuple[dict[str, Any], list[dict[str, str]], dict[str, str] | None]:
    """(trigger, secretTargetRefs, podIdentity) for the transport's scaler."""
    target = str(actor.scaling.queue_length)
    # KEDA must watch the broker's name of the queue (a transport's queue_prefix may change it)
    queue = TransportSettings(kind=transport.type, options=dict(transport.options)).broker_queue(actor.queue)
    if transport.type == "rabbitmq":
        meta = {"protocol": "amqp", "queueName": queue, "mode": "QueueLength", "value": target}
        refs: list[dict[str, str]] = []
        if transport.url_secret is not None:
            s = transport.url_secret
            refs.append({"parameter": "host", "name": s.name, "key": s.key})
        else:
            meta["host"] = transport.url  # config refuses URLs holding a password
        return {"type": "rabbitmq", "metadata": meta}, refs, None
    if transport.type == "sqs":
        meta = {"queueURL": queue, "queueLength": target, "awsRegion": transport.region}
        if transport.endpoint:
            meta["awsEndpoint"] = transport.endpoint
        refs = []
        for param, secret in (
            ("awsAccessKeyID", transport.access_key_secret),
            ("awsSecretAccessKey", transport.secret_key_secret),
        ):
            if secret is not None:
                refs.append({"parameter": param, "name": secret.name, "key": secret.key})
        identity = {"provider": transport.pod_identity} if transport.pod_identity else None
        return {"type": "aws-sqs-queue", "metadata": meta}, refs, identity
    raise ScalingError(
        f"transport {transport.name!r} is of type {transport.type!r}, which KEDA cannot scale on; "
        "set spec.scaling.enabled=false and use spec.replicas"
    )


TRIGGER_NAME = "queueLength"
"""Name of the queue trigger when a formula is set: KEDA formulas refer to triggers by name."""


def _advanced(scale: specs.ScalingSpec, default_behavior: Mapping[str, Any] | None) -> dict[str, Any]:
    """ScaledObject ``spec.advanced``: scaling modifiers, restore flag, HPA behaviour."""
    out: dict[str, Any] = {}
    adv = scale.advanced
    if adv is not None:
        modifiers = {
            k: v
            for k, v in (
                ("formula", adv.formula),
                ("target", adv.target),
                ("activationTarget", adv.activation_target),
                ("metricType", adv.metric_type),
            )
            if v
        }
        if modifiers:
            out["scalingModifiers"] = modifiers
        if adv.restore_to_original_replica_count is not None:
            out["restoreToOriginalReplicaCount"] = adv.restore_to_original_replica_count
    behavior = scale.behavior if scale.behavior is not None else default_behavior
    if behavior:
        out["horizontalPodAutoscalerConfig"] = {"behavior": copy.deepcopy(dict(behavior))}
    return out


def render_scaling(
    actor: specs.ActorSpec, transport: configs.TransportConfig, default_behavior: Mapping[str, Any] | None = None
) -> list[Manifest]:
    """ScaledObject (+ TriggerAuthentication when credentials are needed), in apply order.

    ``default_behavior`` is the operator configuration's HPA behaviour, used when the
    actor sets no ``scaling.behavior``.
    """
    trigger, refs, identity = _trigger(actor, transport)
    advanced = _advanced(actor.scaling, default_behavior)
    if "formula" in advanced.get("scalingModifiers", {}):
        trigger["name"] = TRIGGER_NAME
    out: list[Manifest] = []
    if refs or identity:
        auth_spec: dict[str, Any] = {}
        if refs:
            auth_spec["secretTargetRef"] = refs
        if identity:
            auth_spec["podIdentity"] = identity
        out.append(
            {
                "apiVersion": KEDA_API,
                "kind": "TriggerAuthentication",
                "metadata": workload.child_metadata(actor, auth_name(actor)),
                "spec": auth_spec,
            }
        )
        trigger["authenticationRef"] = {"name": auth_name(actor)}
    scale = actor.scaling
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": actor.workload_type, "name": actor.name},
        "minReplicaCount": scale.min_replicas,
        "maxReplicaCount": scale.max_replicas,
        "pollingInterval": scale.polling_interval,
        "cooldownPeriod": scale.cooldown_period,
        "triggers": [trigger],
    }
    if advanced:
        spec["advanced"] = advanced
    out.append(
        {
            "apiVersion": KEDA_API,
            "kind": "ScaledObject",
            "metadata": workload.child_metadata(actor, actor.name),
            "spec": spec,
        }
    )
    return out
