"""Spec -> desired KEDA ScaledObject and TriggerAuthentication (pure functions).

RabbitMQ scales on QueueLength of ``asya-<actor>``; SQS uses the aws-sqs-queue scaler.
Connection secrets reach KEDA through a TriggerAuthentication that points at the same
Secret the sidecars read (``secretTargetRef``), never as literal values. The local
transport has no KEDA scaler: ``ScalingError`` says so and the actor keeps fixed replicas.
"""

from __future__ import annotations

from typing import Any

from asya.operator import config as configs
from asya.operator.reconciling import specs, workload

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
    if transport.type == "rabbitmq":
        meta = {"protocol": "amqp", "queueName": actor.queue, "mode": "QueueLength", "value": target}
        refs: list[dict[str, str]] = []
        if transport.url_secret is not None:
            s = transport.url_secret
            refs.append({"parameter": "host", "name": s.name, "key": s.key})
        else:
            meta["host"] = transport.url  # config refuses URLs holding a password
        return {"type": "rabbitmq", "metadata": meta}, refs, None
    if transport.type == "sqs":
        meta = {"queueURL": actor.queue, "queueLength": target, "awsRegion": transport.region}
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


def render_scaling(actor: specs.ActorSpec, transport: configs.TransportConfig) -> list[Manifest]:
    """ScaledObject (+ TriggerAuthentication when credentials are needed), in apply order."""
    trigger, refs, identity = _trigger(actor, transport)
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
    out.append(
        {
            "apiVersion": KEDA_API,
            "kind": "ScaledObject",
            "metadata": workload.child_metadata(actor, actor.name),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": actor.workload_type, "name": actor.name},
                "minReplicaCount": scale.min_replicas,
                "maxReplicaCount": scale.max_replicas,
                "pollingInterval": scale.polling_interval,
                "cooldownPeriod": scale.cooldown_period,
                "triggers": [trigger],
            },
        }
    )
    return out
