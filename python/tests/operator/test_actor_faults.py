"""Bad input the API cannot catch becomes status, never a crash of the operator."""

from __future__ import annotations

from typing import Any

import actorfactory as af
import pytest
from actorfactory import OperatorProcess, wait_for
from kubernetes import client

pytestmark = [pytest.mark.kube, pytest.mark.timeout(90)]


def reported(api: Any, ns: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (a := af.get(api, ns, name)).get("status", {}).get("observedGeneration") == a["metadata"]["generation"]
            and a
        ),
        what=f"status of {name}",
    )


def test_unknown_transport_is_a_condition_not_a_crash(api: Any, namespace: str, operator: OperatorProcess) -> None:
    af.create(api, namespace, af.actor_body("lost", transport="nowhere"))
    actor = reported(api, namespace, "lost")
    cond = af.condition(actor, "Ready")
    assert cond["status"] == "False" and cond["reason"] == "UnknownTransport"
    assert "transport 'nowhere' is not declared" in cond["message"]
    assert "declared: deadmq, local, rabbit" in actor["status"]["lastError"]
    assert actor["status"]["status"] == "Error"
    assert operator.proc.poll() is None
    # nothing half-made
    assert not client.AppsV1Api(api).list_namespaced_deployment(namespace).items
    # the same operator keeps serving other actors, and fixing the spec heals this one
    af.create(api, namespace, af.actor_body("fine"))
    reported(api, namespace, "fine")
    af.patch(api, namespace, "lost", {"spec": {"transport": "local"}})
    healed = wait_for(
        lambda: af.condition(af.get(api, namespace, "lost"), "QueueReady").get("status") == "True",
        what="healed",
    )
    assert healed
    assert af.get(api, namespace, "lost")["status"].get("lastError") is None


def test_missing_handler_env_is_reported(api: Any, namespace: str) -> None:
    body = af.actor_body("nohandler")
    body["spec"]["workload"]["template"]["spec"]["containers"][0]["env"] = []
    af.create(api, namespace, body)
    actor = reported(api, namespace, "nohandler")
    assert af.condition(actor, "Ready")["reason"] == "InvalidSpec"
    assert "ASYA_HANDLER" in actor["status"]["lastError"]


def test_reserved_volume_name_is_reported(api: Any, namespace: str) -> None:
    body = af.actor_body("vol")
    body["spec"]["workload"]["template"]["spec"]["volumes"] = [{"name": "asya-socket", "emptyDir": {}}]
    af.create(api, namespace, body)
    actor = reported(api, namespace, "vol")
    assert "reserved for the operator" in actor["status"]["lastError"]


def test_scaling_on_a_transport_keda_cannot_scale_is_reported(api: Any, namespace: str) -> None:
    af.create(api, namespace, af.actor_body("noscale", scaling={"enabled": True}))
    actor = wait_for(
        lambda: af.condition(a := af.get(api, namespace, "noscale"), "ScalingReady").get("status") == "False" and a,
        what="ScalingReady=False",
    )
    assert af.condition(actor, "ScalingReady")["reason"] == "ScalingUnavailable"
    assert "KEDA cannot scale on" in actor["status"]["lastError"]
    # the workload still exists: a bad scaling choice must not take the actor down
    assert client.AppsV1Api(api).read_namespaced_deployment("noscale", namespace)


def test_unreachable_broker_is_reported_and_retried(api: Any, namespace: str, operator: OperatorProcess) -> None:
    af.create(api, namespace, af.actor_body("stranded", transport="deadmq"))
    actor = wait_for(
        lambda: af.condition(a := af.get(api, namespace, "stranded"), "QueueReady").get("status") == "False" and a,
        what="QueueReady=False",
    )
    cond = af.condition(actor, "QueueReady")
    assert cond["reason"] == "QueueUnavailable"
    assert "cannot create queue 'asya-stranded' on transport 'deadmq' (rabbitmq)" in cond["message"]
    assert actor["status"]["status"] == "Error"
    # the workload is still rendered: sidecars retry the broker on their own
    assert client.AppsV1Api(api).read_namespaced_deployment("stranded", namespace)
    assert operator.proc.poll() is None


def test_a_template_the_api_refuses_is_reported(api: Any, namespace: str) -> None:
    body = af.actor_body("greedy")
    body["spec"]["workload"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
    af.create(api, namespace, body)  # the CRD keeps container fields open, the Deployment API does not
    actor = reported(api, namespace, "greedy")
    assert af.condition(actor, "Ready")["reason"] == "WorkloadRejected"
    assert "quantities must match" in actor["status"]["lastError"]
    assert "fix spec.workload.template" in actor["status"]["lastError"]
