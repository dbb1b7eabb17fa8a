"""The operator's ClusterRole grants exactly what the operator calls: measured, not sampled.

Every request the operator's ServiceAccount sent during the session (every operator
process the tests started, reads and watches included) is in the apiserver's audit log
(``controlplane.audit_policy``). This module runs after every other test (``conftest``
moves it last), first drives the shared operator through a full actor lifecycle itself
and runs one operator as the chart does (Lease election, CRD management), so that each verb the operator has a use for is exercised even when this file runs alone,
then compares the session's usage with the ClusterRole in both directions: a granted
permission nobody used is too wide, a used one that is not granted (or any 403) is a bug.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import actorfactory as af
import controlplane
import pytest
import rbacaudit
import yaml
from actorfactory import OPERATOR_USER, OperatorProcess, wait_for
from kubernetes import client

from asya import transports

pytestmark = [pytest.mark.kube, pytest.mark.rabbitmq, pytest.mark.timeout(300)]

RBAC = controlplane.ROOT / "crds" / "rbac" / "operator.yaml"
SHIPPED = rbacaudit.granted(yaml.safe_load(RBAC.read_text()))


def _exists(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _status_says(api: Any, ns: str, name: str, ctype: str, value: str) -> bool:
    return af.condition(af.get(api, ns, name), ctype).get("status") == value


async def _drop_local_queue(folder: Path, queue: str) -> None:
    t = transports.create(transports.TransportSettings(kind="local", url=str(folder)))
    await t.connect()
    try:
        await t.delete_queue(queue)
    finally:
        await t.close()


def _local_queues(folder: Path) -> set[str]:
    with sqlite3.connect(folder / "queues.sqlite3") as conn:
        return {r[0] for r in conn.execute("SELECT name FROM queues")}


def drive_lifecycle(api: Any, ns: str, local_queues: Path) -> None:
    """Make the operator do everything it has a reason to do, each step awaited."""
    apps, core, custom = client.AppsV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)

    # create: queue on RabbitMQ, runtime ConfigMap, Deployment, finalizer (deletion policy Delete), status
    af.create(api, ns, af.actor_body("life", transport="rabbit", queue={"deletionPolicy": "Delete"}))
    wait_for(lambda: _status_says(api, ns, "life", "QueueReady", "True"), what="life: QueueReady")
    assert _exists(core.read_namespaced_config_map, "life-asya-runtime", ns)
    # update: the Deployment is re-applied
    af.patch(api, ns, "life", {"spec": {"replicas": 2}})
    wait_for(lambda: apps.read_namespaced_deployment("life", ns).spec.replicas == 2, what="life: 2 replicas")
    # scale: KEDA objects appear, then go when scaling is switched off
    af.patch(api, ns, "life", {"spec": {"scaling": {"enabled": True, "maxReplicas": 3}}})
    so = ("keda.sh", "v1alpha1", ns, "scaledobjects", "life")
    ta = ("keda.sh", "v1alpha1", ns, "triggerauthentications", "life-asya")
    wait_for(lambda: _exists(custom.get_namespaced_custom_object, *so), what="life: ScaledObject")
    wait_for(lambda: _exists(custom.get_namespaced_custom_object, *ta), what="life: TriggerAuthentication")
    af.patch(api, ns, "life", {"spec": {"scaling": {"enabled": False}}})
    wait_for(lambda: not _exists(custom.get_namespaced_custom_object, *so), what="life: ScaledObject deleted")
    wait_for(lambda: not _exists(custom.get_namespaced_custom_object, *ta), what="life: TriggerAuth deleted")

    # the other workload kind, and a queue that vanishes and is re-created by the timer
    sts = af.actor_body("life-sts")
    sts["spec"]["workload"]["type"] = "StatefulSet"
    af.create(api, ns, sts)
    wait_for(lambda: _status_says(api, ns, "life-sts", "QueueReady", "True"), what="life-sts: QueueReady")
    assert _exists(apps.read_namespaced_stateful_set, "life-sts", ns)
    asyncio.run(_drop_local_queue(local_queues, "asya-life-sts"))
    assert "asya-life-sts" not in _local_queues(local_queues)
    wait_for(lambda: "asya-life-sts" in _local_queues(local_queues), what="queue re-created")

    # a broker that is down: the reconcile fails temporarily and is retried. kopf 1.45 posts
    # no Event for that (settings.posting.loggers is off): should it ever start to, the
    # Event create shows up as used and must then be granted.
    af.create(api, ns, af.actor_body("life-dead", transport="deadmq"))
    wait_for(lambda: _status_says(api, ns, "life-dead", "QueueReady", "False"), what="life-dead: QueueReady=False")

    # delete: the finalizer runs (queue deleted), children go by ownerReferences
    for name in ("life", "life-sts", "life-dead"):
        af.delete(api, ns, name)

    def gone() -> bool:
        if left := [n for n in ("life", "life-sts", "life-dead") if _exists(af.get, api, ns, n)]:
            raise LookupError(f"still there: {left}")  # wait_for reports the last one
        return True

    # A deletion that arrives while the refresh timer runs waits for the timer to exit, and
    # kopf polls an exiting timer only every settings.background.cancellation_polling (60 s).
    wait_for(gone, timeout_s=90, what="actors gone")


def drive_election_and_crd(api: Any, ns: str, start_operator: Callable[..., OperatorProcess]) -> None:
    """An operator as the chart runs it: it creates the Lease, applies the CRD, renews, releases."""
    op = start_operator(
        ns,
        ASYA_OPERATOR_LEADER_ELECTION="true",
        ASYA_OPERATOR_MANAGE_CRDS="true",
        ASYA_OPERATOR_LEASE_NAMESPACE=ns,
        ASYA_OPERATOR_LEASE_DURATION_S="3",
        ASYA_OPERATOR_RENEW_DEADLINE_S="2",
        ASYA_OPERATOR_RETRY_PERIOD_S="0.5",
    )
    coordination = client.CoordinationV1Api(api)
    first = wait_for(lambda: coordination.read_namespaced_lease("asya-operator", ns), what="the Lease")
    wait_for(lambda: "applied CRD asyncactors.asya.sh" in op.output(), what=f"CRD applied:\n{op.output()[-2000:]}")
    wait_for(
        lambda: coordination.read_namespaced_lease("asya-operator", ns).spec.renew_time != first.spec.renew_time,
        what="a renewal",
    )
    op.stop()  # SIGTERM: the Lease is released with one more update
    assert op.proc.returncode == 0, op.output()[-3000:]
    assert not coordination.read_namespaced_lease("asya-operator", ns).spec.holder_identity


def audit_flushed(kube: controlplane.ControlPlane, api: Any, ns: str) -> list[dict[str, Any]]:
    """The audit log up to now: write a marker and wait until the batched log holds it."""
    marker = f"audit-barrier-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=marker))
    )
    events: list[dict[str, Any]] = wait_for(
        lambda: (
            (evs := kube.audit_events()) and any((e.get("objectRef") or {}).get("name") == marker for e in evs) and evs
        ),
        what="audit log flushed",
    )
    return events


def test_runs_after_every_other_operator_test(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    mine = [i for i, item in enumerate(items) if item.path == request.path]
    later = [item.nodeid for item in items[mine[-1] + 1 :] if "tests/operator/" in item.nodeid]
    assert not later, f"operator tests scheduled after the RBAC comparison: {later}"


def test_cluster_role_equals_what_the_operator_used(
    kube: controlplane.ControlPlane,
    api: Any,
    namespace: str,
    local_queues: Path,
    operator: OperatorProcess,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    by_name = rbacaudit.named(SHIPPED)
    try:
        drive_lifecycle(api, namespace, local_queues)
        drive_election_and_crd(api, af.new_namespace(kube, "asya-rbac"), start_operator)
    except AssertionError as exc:  # a missing permission usually shows up as a stuck step first
        denied = rbacaudit.usage(audit_flushed(kube, api, namespace), OPERATOR_USER, by_name).denied
        if denied:
            refused = "\n".join(sorted(set(denied)))
            raise AssertionError(f"the operator was refused:\n{refused}\n(so the lifecycle got stuck: {exc})") from exc
        raise AssertionError(f"{exc}\noperator log:\n{operator.output()[-4000:]}") from exc
    assert operator.proc.poll() is None, operator.output()[-3000:]
    usage = rbacaudit.usage(audit_flushed(kube, api, namespace), OPERATOR_USER, by_name)
    assert usage.requests > 0, f"no request of {OPERATOR_USER} in the audit log: is it audited?"
    enforced = client.RbacAuthorizationV1Api(api).read_cluster_role(
        yaml.safe_load(RBAC.read_text())["metadata"]["name"]
    )
    shipped = SHIPPED
    rules = [
        {"apiGroups": r.api_groups, "resources": r.resources, "verbs": r.verbs, "resourceNames": r.resource_names}
        for r in enforced.rules or []
    ]
    assert rbacaudit.granted({"rules": rules}) == shipped, "the ClusterRole in the cluster is not the shipped file"

    print(f"operator permissions measured over the session:\n{rbacaudit.format_permissions(usage.used)}")
    assert not usage.denied, "the operator was refused:\n" + "\n".join(sorted(set(usage.denied)))
    unused = shipped - usage.used
    ungranted = usage.used - shipped
    assert not unused and not ungranted, (
        f"granted but never used:\n{rbacaudit.format_permissions(unused)}\n"
        f"used but not granted:\n{rbacaudit.format_permissions(ungranted)}\n"
        f"measured ({usage.requests} requests):\n{rbacaudit.format_permissions(usage.used)}"
    )
