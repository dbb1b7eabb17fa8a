"""Two operators with leader election: one reconciles, the other writes nothing until it leads.

Each operator runs as its own ServiceAccount (bound to the shipped ClusterRole), so the
audit log tells their writes apart. Short timings: lease 3 s, renew deadline 2 s, retry
0.5 s; every wait is a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import actorfactory as af
import controlplane
import pytest
import yaml
from actorfactory import OPERATOR_NS, OperatorProcess, new_namespace, wait_for
from kubernetes import client

from asya.operator.leader import EXIT_LEASE_LOST

pytestmark = [pytest.mark.kube, pytest.mark.timeout(180)]

RBAC = controlplane.ROOT / "crds" / "rbac" / "operator.yaml"
LEASE = "asya-operator"
LEASE_DURATION_S = 3
MARGIN_S = 25  # kopf start-up (login, discovery, watches) on a loaded 2-core machine


def user(sa: str) -> str:
    return f"system:serviceaccount:{OPERATOR_NS}:{sa}"


@pytest.fixture(scope="module")
def accounts(kube: controlplane.ControlPlane) -> dict[str, Path]:
    """Two more ServiceAccounts with the operator's ClusterRole: kubeconfig per account name."""
    role = yaml.safe_load(RBAC.read_text())["metadata"]["name"]
    return {sa: kube.service_account_kubeconfig(OPERATOR_NS, sa, role) for sa in ("asya-op-la", "asya-op-lb")}


def elected_env(ns: str) -> dict[str, str]:
    return {
        "ASYA_OPERATOR_LEADER_ELECTION": "true",
        "ASYA_OPERATOR_LEASE_NAMESPACE": ns,
        "ASYA_OPERATOR_LEASE_DURATION_S": str(LEASE_DURATION_S),
        "ASYA_OPERATOR_RENEW_DEADLINE_S": "2",
        "ASYA_OPERATOR_RETRY_PERIOD_S": "0.5",
    }


def elected(start_operator: Callable[..., OperatorProcess], ns: str, kubeconfig: Path, name: str) -> OperatorProcess:
    return start_operator(ns, KUBECONFIG=str(kubeconfig), POD_NAME=name, **elected_env(ns))


def lease(api: Any, ns: str) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE, ns)


def holder(api: Any, ns: str) -> str:
    return str(lease(api, ns).spec.holder_identity or "")


def writes(kube: controlplane.ControlPlane, api: Any, ns: str) -> list[tuple[str, str, int]]:
    """Every write into ``ns`` so far as (user, 'verb resource/name[/sub]', HTTP code), log flushed.

    Only ``ns``: the accounts are shared by this module's tests, and an operator of an
    earlier test may still be running (and renewing its own Lease) elsewhere.
    """
    marker = f"audit-barrier-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=marker))
    )
    events = wait_for(
        lambda: (
            (evs := kube.audit_writes()) and any((e.get("objectRef") or {}).get("name") == marker for e in evs) and evs
        ),
        what="audit log flushed",
    )
    out = []
    for ev in events:
        ref = ev.get("objectRef") or {}
        if ref.get("namespace") != ns:
            continue
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        what = f"{ev['verb']} {ref.get('resource')}/{ref.get('name')}{sub}"
        out.append((str(ev["user"]["username"]), what, int((ev.get("responseStatus") or {}).get("code") or 0)))
    return out


def successful(all_writes: list[tuple[str, str, int]], username: str) -> list[str]:
    return [what for who, what, code in all_writes if who == username and code < 300]


def deployment(api: Any, ns: str, name: str) -> Any:
    return client.AppsV1Api(api).read_namespaced_deployment(name, ns)


def test_one_leader_writes_the_standby_takes_over_when_it_is_killed(
    kube: controlplane.ControlPlane,
    api: Any,
    start_operator: Callable[..., OperatorProcess],
    accounts: dict[str, Path],
) -> None:
    ns = new_namespace(kube, "asya-le")
    (sa_a, kc_a), (sa_b, kc_b) = accounts.items()
    ops = {sa_a: elected(start_operator, ns, kc_a, "op-a"), sa_b: elected(start_operator, ns, kc_b, "op-b")}
    first = wait_for(lambda: holder(api, ns), timeout_s=30, what="a Lease holder")
    leader_sa, standby_sa = (sa_a, sa_b) if first == "op-a" else (sa_b, sa_a)
    standby_name = "op-b" if first == "op-a" else "op-a"
    leader, standby = ops[leader_sa], ops[standby_sa]
    wait_for(lambda: "standby, Lease" in standby.output(), what=f"standby log:\n{standby.output()[-2000:]}")

    af.create(api, ns, af.actor_body("first"))
    wait_for(lambda: deployment(api, ns, "first"), timeout_s=60, what="first: Deployment")
    wait_for(lambda: af.get(api, ns, "first").get("status", {}).get("observedGeneration") == 1, what="first: status")
    seen = writes(kube, api, ns)
    assert "patch deployments/first" in successful(seen, user(leader_sa))
    assert "patch asyncactors/first/status" in successful(seen, user(leader_sa))
    # the standby tried to create the Lease at most (refused: it existed), and wrote nothing else
    tried = [(what, code) for who, what, code in seen if who == user(standby_sa)]
    assert all(what == f"create leases/{LEASE}" or what == "create leases/None" for what, _ in tried), tried
    assert all(code == 409 for _, code in tried), tried
    assert holder(api, ns) == first and lease(api, ns).spec.lease_transitions == 0

    killed_at = time.monotonic()
    leader.stop(kill=True)
    af.create(api, ns, af.actor_body("second"))  # nobody leads right now
    wait_for(lambda: holder(api, ns) == standby_name, timeout_s=LEASE_DURATION_S + MARGIN_S, what="takeover")
    left = LEASE_DURATION_S + MARGIN_S - (time.monotonic() - killed_at)
    wait_for(lambda: deployment(api, ns, "second"), timeout_s=max(left, 1), what="second reconciled by the new leader")
    assert lease(api, ns).spec.lease_transitions == 1
    assert "patch deployments/second" in successful(writes(kube, api, ns), user(standby_sa))
    assert standby.proc.poll() is None, standby.output()[-3000:]
    standby.stop()


def test_a_frozen_leader_exits_on_resume_without_writing(
    kube: controlplane.ControlPlane,
    api: Any,
    start_operator: Callable[..., OperatorProcess],
    accounts: dict[str, Path],
) -> None:
    ns = new_namespace(kube, "asya-lf")
    (sa_a, kc_a), (sa_b, kc_b) = accounts.items()
    a = elected(start_operator, ns, kc_a, "op-a")
    wait_for(lambda: holder(api, ns) == "op-a", timeout_s=30, what="op-a leads")
    b = elected(start_operator, ns, kc_b, "op-b")
    wait_for(lambda: "standby, Lease" in b.output(), what=f"op-b standby:\n{b.output()[-2000:]}")
    # an actor with a status that keeps changing would give a frozen leader's timer a reason to write
    af.create(api, ns, af.actor_body("before"))
    wait_for(lambda: af.get(api, ns, "before").get("status", {}).get("observedGeneration") == 1, what="before")

    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: holder(api, ns) == "op-b", timeout_s=LEASE_DURATION_S + MARGIN_S, what="op-b takes over")
        af.create(api, ns, af.actor_body("during"))
        af.patch(api, ns, "before", {"spec": {"replicas": 2}})  # events waiting for op-a when it wakes
        wait_for(lambda: deployment(api, ns, "during"), timeout_s=MARGIN_S, what="during: reconciled by op-b")
        wait_for(lambda: deployment(api, ns, "before").spec.replicas == 2, what="before: rescaled by op-b")
        seen = writes(kube, api, ns)
        assert "patch deployments/during" in successful(seen, user(sa_b))
        frozen = len(seen)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_for(lambda: a.proc.poll() is not None, timeout_s=15, what="op-a exits after resuming")
    assert a.proc.returncode == EXIT_LEASE_LOST, a.output()[-3000:]
    assert "exiting so that only the new leader reconciles" in a.output()
    after = writes(kube, api, ns)[frozen:]
    woke = [(what, code) for who, what, code in after if who == user(sa_a)]
    # A renewal that had passed its check when the signal froze the process still goes out on
    # resume; the Lease's resourceVersion precondition refuses it (409). Nothing else may.
    assert all(what == f"update leases/{LEASE}" and code == 409 for what, code in woke), woke
    assert holder(api, ns) == "op-b" and b.proc.poll() is None
    b.stop()


def test_lease_and_crd_rights_are_limited_by_name(kube: controlplane.ControlPlane) -> None:
    """Another controller's Lease (kube-system) and other CRDs stay out of the operator's reach."""
    from actorfactory import OPERATOR_USER

    def can(*args: str) -> str:
        return kube.kubectl("auth", "can-i", *args, f"--as={OPERATOR_USER}", check=False).strip()

    assert can("update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system") == "no"
    assert can("get", "leases.coordination.k8s.io/kube-scheduler", "-n", "kube-system") == "no"
    assert can("update", f"leases.coordination.k8s.io/{LEASE}", "-n", "kube-system") == "yes"
    assert can("patch", "customresourcedefinitions.apiextensions.k8s.io/scaledobjects.keda.sh") == "no"
    assert can("patch", "customresourcedefinitions.apiextensions.k8s.io/asyncactors.asya.sh") == "yes"
    assert can("create", "customresourcedefinitions.apiextensions.k8s.io") == "no"


def test_a_standby_answers_the_liveness_probe_and_kopf_takes_the_port_over(
    kube: controlplane.ControlPlane,
    api: Any,
    start_operator: Callable[..., OperatorProcess],
    accounts: dict[str, Path],
) -> None:
    """The kubelet must not restart a standby for a failing probe; the leader's probe is kopf's."""
    ns = new_namespace(kube, "asya-lp")
    (_, kc_a), (_, kc_b) = accounts.items()
    a = elected(start_operator, ns, kc_a, "op-a")
    wait_for(lambda: holder(api, ns) == "op-a", timeout_s=30, what="op-a leads")
    url = f"http://127.0.0.1:{controlplane.free_port()}/healthz"
    b = start_operator(
        ns, **{**elected_env(ns), "KUBECONFIG": str(kc_b), "POD_NAME": "op-b", "ASYA_OPERATOR_LIVENESS": url}
    )
    wait_for(lambda: "standby, Lease" in b.output(), what=f"op-b standby:\n{b.output()[-2000:]}")
    assert probe(url) == {"standby": True}
    a.stop()  # SIGTERM: op-a releases the Lease
    assert a.proc.returncode == 0, a.output()[-3000:]
    wait_for(lambda: holder(api, ns) == "op-b", timeout_s=MARGIN_S, what="op-b takes over")
    wait_for(lambda: probe(url) != {"standby": True}, timeout_s=MARGIN_S, what=f"kopf's probe:\n{b.output()[-2000:]}")
    assert b.proc.poll() is None
    b.stop()


def probe(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return json.loads(resp.read() or b"null")
