"""Scaling switched on and off on a running actor: KEDA objects appear and go."""

from __future__ import annotations

from typing import Any

import actorfactory as af
import pytest
from actorfactory import wait_for
from kubernetes import client

pytestmark = [pytest.mark.kube, pytest.mark.rabbitmq, pytest.mark.timeout(90)]


def keda(api: Any, ns: str, plural: str, name: str) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).get_namespaced_custom_object("keda.sh", "v1alpha1", ns, plural, name))


def gone(api: Any, ns: str, plural: str, name: str) -> bool:
    try:
        keda(api, ns, plural, name)
    except client.exceptions.ApiException as exc:
        return exc.status == 404
    return False


def test_scaling_changed_on_a_running_actor(api: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    af.create(api, namespace, af.actor_body("rab", transport="rabbit", replicas=3))
    wait_for(lambda: apps.read_namespaced_deployment("rab", namespace).spec.replicas == 3, what="3 replicas")
    actor = wait_for(
        lambda: af.condition(a := af.get(api, namespace, "rab"), "QueueReady").get("status") == "True" and a,
        what="queue on RabbitMQ",
    )
    assert actor["status"]["transportType"] == "rabbitmq"
    assert actor["status"]["queueDepth"] == 0

    scaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 7, "queueLength": 20}
    af.patch(api, namespace, "rab", {"spec": {"scaling": scaling}})
    so = wait_for(lambda: keda(api, namespace, "scaledobjects", "rab"), what="ScaledObject")
    assert so["spec"]["minReplicaCount"] == 1 and so["spec"]["maxReplicaCount"] == 7
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"] == {"protocol": "amqp", "queueName": "asya-rab", "mode": "QueueLength", "value": "20"}
    assert trigger["authenticationRef"] == {"name": "rab-asya"}
    auth = keda(api, namespace, "triggerauthentications", "rab-asya")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "host", "name": "asya-rabbitmq", "key": "url"}]
    assert so["metadata"]["ownerReferences"][0]["name"] == "rab"
    actor = wait_for(
        lambda: (
            af.condition(a := af.get(api, namespace, "rab"), "ScalingReady").get("reason") == "ScaledObjectApplied"
            and a
        ),
        what="ScalingReady",
    )
    # replicas are KEDA's now: the operator no longer sets them
    dep = apps.read_namespaced_deployment("rab", namespace)
    managed = [f.manager for f in dep.metadata.managed_fields if "f:replicas" in str(f.fields_v1)]
    assert "asya-operator" not in managed

    af.patch(api, namespace, "rab", {"spec": {"scaling": {"enabled": False}, "replicas": 2}})
    wait_for(lambda: gone(api, namespace, "scaledobjects", "rab"), what="ScaledObject deleted")
    wait_for(lambda: gone(api, namespace, "triggerauthentications", "rab-asya"), what="TriggerAuthentication deleted")
    wait_for(lambda: apps.read_namespaced_deployment("rab", namespace).spec.replicas == 2, what="2 replicas")
    wait_for(
        lambda: af.condition(af.get(api, namespace, "rab"), "ScalingReady").get("reason") == "FixedReplicas",
        what="FixedReplicas",
    )
