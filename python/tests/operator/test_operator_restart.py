"""Operator crash mid-reconcile, restart, resume: converges, no duplicates, no hot loop."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import actorfactory as af
import controlplane
import pytest
from actorfactory import OPERATOR_NS, OPERATOR_SA, OperatorProcess, new_namespace, wait_for
from kubernetes import client

pytestmark = [pytest.mark.kube, pytest.mark.timeout(120)]

OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"


def operator_writes(kube: controlplane.ControlPlane, api: Any, ns: str) -> list[str]:
    """The operator's API writes into ``ns`` so far, as 'verb resource/name[/sub]'."""
    # The audit log is written in batches: write a marker and wait until it is in the log,
    # so every write before it is there too.
    marker = f"audit-barrier-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=marker))
    )
    events = wait_for(
        lambda: (
            (evs := kube.audit_writes())
            and any((ev.get("objectRef") or {}).get("name") == marker for ev in evs)
            and evs
        ),
        what="audit log flushed",
    )
    out = []
    for ev in events:
        ref = ev.get("objectRef") or {}
        if ev.get("user", {}).get("username") == OPERATOR_USER and ref.get("namespace") == ns:
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            out.append(f"{ev['verb']} {ref.get('resource')}/{ref.get('name')}{sub}")
    return out


def settled(api: Any, ns: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (a := af.get(api, ns, name)).get("status", {}).get("observedGeneration") == 1
            and af.condition(a, "QueueReady").get("status") == "True"
            and a
        ),
        what=f"{name} settled",
    )


def test_killed_mid_reconcile_then_restarted_converges_without_duplicates(
    kube: controlplane.ControlPlane, api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns = new_namespace(kube, "asya-k")
    doomed = start_operator(ns, ASYA_OPERATOR_CRASH_AFTER_WRITES="2")  # dies right after the Deployment write
    af.create(api, ns, af.actor_body("survivor"))
    wait_for(lambda: doomed.proc.poll() is not None, what="operator crash")
    assert doomed.proc.returncode == 137
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_deployment("survivor", ns)
    assert "observedGeneration" not in (af.get(api, ns, "survivor").get("status") or {})

    start_operator(ns)
    settled(api, ns, "survivor")
    assert [d.metadata.name for d in apps.list_namespaced_deployment(ns).items] == ["survivor"]
    cms = [c.metadata.name for c in client.CoreV1Api(api).list_namespaced_config_map(ns).items]
    assert cms.count("survivor-asya-runtime") == 1
    rs = wait_for(lambda: apps.list_namespaced_replica_set(ns).items, what="replicaset")
    assert len(rs) == 1
    # the restarted operator found the children as wanted and did not rewrite them
    children = [w for w in operator_writes(kube, api, ns) if "asyncactors" not in w]
    assert children == ["patch configmaps/survivor-asya-runtime", "patch deployments/survivor"]


def workload_reads(kube: controlplane.ControlPlane, ns: str, name: str) -> int:
    """How many times the operator has read Deployment ``name``: once per status tick, once on resume."""
    return sum(
        1
        for ev in kube.audit_events()
        if ev.get("stage") == "ResponseComplete"
        and ev.get("verb") == "get"
        and ev.get("user", {}).get("username") == OPERATOR_USER
        and (ev.get("objectRef") or {}).get("namespace") == ns
        and (ev.get("objectRef") or {}).get("resource") == "deployments"
        and (ev.get("objectRef") or {}).get("name") == name
    )


def wait_reads(kube: controlplane.ControlPlane, ns: str, name: str, more: int, what: str) -> None:
    """Until the operator read the workload ``more`` more times: ticks that happened, not seconds that passed."""
    start = workload_reads(kube, ns, name)
    wait_for(lambda: workload_reads(kube, ns, name) >= start + more, what=what)


def test_unchanged_actor_causes_no_writes_on_timer_ticks_or_resume(
    kube: controlplane.ControlPlane, api: Any, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns = new_namespace(kube, "asya-k")
    op = start_operator(ns)
    af.create(api, ns, af.actor_body("calm"))
    settled(api, ns, "calm")
    # "unchanged" starts once kube-controller-manager is done with the Deployment and a tick saw it
    wait_for(lambda: af.get(api, ns, "calm")["status"].get("replicas") == 1, what="status shows the pod")
    wait_reads(kube, ns, "calm", 2, what="two more status ticks")
    before = operator_writes(kube, api, ns)
    wait_reads(kube, ns, "calm", 4, what="four more status ticks")
    ticks = operator_writes(kube, api, ns)[len(before) :]
    assert ticks == [], f"writes on timer ticks of an unchanged actor: {ticks}"
    op.stop()
    start_operator(ns)
    wait_reads(kube, ns, "calm", 4, what="the new operator's resume and three status ticks")
    resumed = operator_writes(kube, api, ns)[len(before) :]
    assert resumed == [], f"writes on resume of an unchanged actor: {resumed}"


def test_printer_columns_show_real_values(kube: controlplane.ControlPlane, api: Any, namespace: str) -> None:
    af.create(api, namespace, af.actor_body("shown", replicas=2))
    settled(api, namespace, "shown")
    out = kube.kubectl("get", "asya", "-n", namespace)
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "TRANSPORT", "READY", "QUEUE", "STATUS", "AGE"]
    name, transport, ready, queue, status, _age = row.split()
    assert (name, transport, ready, queue, status) == ("shown", "local", "0/2", "0", "Pending")
    assert kube.kubectl("get", "asyas", "-n", namespace, "-o", "name").strip() == "asyncactor.asya.sh/shown"
