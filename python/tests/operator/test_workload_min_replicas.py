"""With scaling on, the workload starts at minReplicas and later applies never reset the count.

Real apiserver + kube-controller-manager: server-side apply deletes a field no manager
owns any more, so these tests re-apply after each step and read what the API kept.
There is no KEDA controller here; the tests scale through the ``scale`` subresource the
way KEDA's HPA does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import actorfactory as af
import controlplane
import pytest
from actorfactory import OperatorProcess, new_namespace, wait_for
from kubernetes import client
from test_operator_restart import operator_writes, wait_reads

from asya.operator.reconciling import HASH_ANNOTATION

pytestmark = [pytest.mark.kube, pytest.mark.rabbitmq, pytest.mark.timeout(90)]


def scaling(min_replicas: int) -> dict[str, Any]:
    return {"enabled": True, "minReplicas": min_replicas, "maxReplicas": 5, "queueLength": 10}


def applied_hash(dep: Any) -> str:
    return str((dep.metadata.annotations or {}).get(HASH_ANNOTATION, ""))


def reapplied(apps: client.AppsV1Api, ns: str, name: str, prefetch: int) -> Any:
    """Change the actor so the operator re-applies its Deployment; the Deployment after that apply."""
    before = applied_hash(apps.read_namespaced_deployment(name, ns))
    af.patch(apps.api_client, ns, name, {"spec": {"sidecar": {"prefetch": prefetch}}})
    return wait_for(
        lambda: applied_hash(d := apps.read_namespaced_deployment(name, ns)) not in ("", before) and d,
        what=f"{name} re-applied",
    )


def operator_apply_owns_replicas(dep: Any) -> bool:
    return any(
        f.manager == "asya-operator" and f.operation == "Apply" and "f:replicas" in str(f.fields_v1)
        for f in dep.metadata.managed_fields or []
    )


@pytest.mark.parametrize("min_replicas", [0, 2])
def test_created_at_min_replicas_and_reapplies_keep_the_autoscalers_count(
    api: Any, namespace: str, min_replicas: int
) -> None:
    apps = client.AppsV1Api(api)
    af.create(api, namespace, af.actor_body("mr", transport="rabbit", scaling=scaling(min_replicas)))
    dep = wait_for(lambda: apps.read_namespaced_deployment("mr", namespace), what="Deployment")
    assert dep.spec.replicas == min_replicas
    assert dep.metadata.generation == 1  # created at minReplicas, not defaulted to 1 and scaled after

    dep = reapplied(apps, namespace, "mr", prefetch=3)
    assert dep.spec.replicas == min_replicas  # the apply without replicas did not delete the count
    assert not operator_apply_owns_replicas(dep)

    apps.patch_namespaced_deployment_scale("mr", namespace, {"spec": {"replicas": 3}}, field_manager="hpa-stand-in")
    wait_for(lambda: apps.read_namespaced_deployment("mr", namespace).spec.replicas == 3, what="scaled to 3")
    dep = reapplied(apps, namespace, "mr", prefetch=5)
    assert dep.spec.replicas == 3
    assert not operator_apply_owns_replicas(dep)


def test_switching_scaling_on_keeps_the_running_count_until_the_autoscaler_decides(api: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    af.create(api, namespace, af.actor_body("sw", transport="rabbit", replicas=3))
    wait_for(lambda: apps.read_namespaced_deployment("sw", namespace).spec.replicas == 3, what="3 replicas")
    before = applied_hash(apps.read_namespaced_deployment("sw", namespace))
    af.patch(api, namespace, "sw", {"spec": {"scaling": scaling(1)}})
    dep = wait_for(
        lambda: applied_hash(d := apps.read_namespaced_deployment("sw", namespace)) != before and d,
        what="scaling applied",
    )
    assert dep.spec.replicas == 3  # not reset to the apiserver's default of 1
    assert not operator_apply_owns_replicas(dep)


def test_the_starting_count_costs_no_extra_write_at_creation_or_on_resume(
    kube: controlplane.ControlPlane, api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns = new_namespace(kube, "asya-m")
    op = start_operator(ns)
    apps = client.AppsV1Api(api)
    af.create(api, ns, af.actor_body("cost", transport="rabbit", scaling=scaling(0)))
    wait_for(lambda: af.get(api, ns, "cost").get("status", {}).get("observedGeneration") == 1, what="reconciled")
    assert apps.read_namespaced_deployment("cost", ns).spec.replicas == 0

    def workload_writes() -> list[str]:
        return [w for w in operator_writes(kube, api, ns) if "deployments" in w]

    assert workload_writes() == ["patch deployments/cost"]  # the count rides on the one creating apply
    op.stop()
    start_operator(ns)
    # the new operator's resume and three status ticks: nothing to write for an unchanged actor
    wait_reads(kube, ns, "cost", 4, what="the new operator's resume and three status ticks")
    assert workload_writes() == ["patch deployments/cost"]
    reapplied(apps, ns, "cost", prefetch=2)
    # the hand-over is paid once, on the first apply that leaves replicas out
    assert workload_writes() == ["patch deployments/cost"] * 3
