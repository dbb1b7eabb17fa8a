"""Reading the test apiserver for the install proofs: workloads, their Pods, leftovers, events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

import controlplane
from support.procs import poll

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def restricted_namespace(kube: controlplane.ControlPlane, prefix: str) -> str:
    """A fresh namespace where the apiserver itself enforces Pod Security "restricted"."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("label", "namespace", ns, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    return ns


def get_json(kube: controlplane.ControlPlane, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json"))


def failed_creates(kube: controlplane.ControlPlane, ns: str) -> list[str]:
    """FailedCreate events: how a Pod Security refusal of a ReplicaSet/StatefulSet shows."""
    events = get_json(kube, "events", "-n", ns, "--field-selector", "reason=FailedCreate")["items"]
    first: dict[str, str] = {}  # one line per workload: the controller retries with the same refusal
    for e in events:
        first.setdefault(f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}", e.get("message", ""))
    return [f"{who}: {msg}" for who, msg in first.items()]


def _pods_for(kube: controlplane.ControlPlane, ns: str, workload: dict[str, Any]) -> list[dict[str, Any]]:
    labels = (workload["spec"].get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods: list[dict[str, Any]] = get_json(kube, "pods", "-n", ns, "-l", selector)["items"]
    return pods


def expected_pods(workload: dict[str, Any]) -> int:
    """Pods kube-controller-manager must create without a kubelet.

    An OrderedReady StatefulSet creates pod N+1 only when pod N is Ready, which never happens
    without a kubelet: one Pod proves admission accepted its template.
    """
    replicas = int(workload["spec"].get("replicas", 1))
    if workload["kind"] == "StatefulSet" and workload["spec"].get("podManagementPolicy", "OrderedReady") != "Parallel":
        return min(replicas, 1)
    return replicas


def wait_for_pods(
    kube: controlplane.ControlPlane, ns: str, workloads: Iterable[tuple[str, str]], timeout_s: float = 90
) -> dict[str, int]:
    """Wait until every (kind, name) workload has its Pods; the failure names each refusal."""
    pending = {f"{kind}/{name}" for kind, name in workloads}
    counts: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for key in sorted(pending):
            kind, name = key.split("/", 1)
            wl = get_json(kube, kind.lower(), name, "-n", ns)
            counts[key] = len(_pods_for(kube, ns, wl))
            want = expected_pods(wl)
            if want > 0 and counts[key] >= want:
                pending.discard(key)
            elif want == 0:
                raise AssertionError(f"{key} in {ns} asks for 0 replicas: no Pod can prove its template admissible")
        if pending:
            time.sleep(0.5)
    if pending:
        refusals = "\n  ".join(failed_creates(kube, ns)) or "(no FailedCreate event)"
        raise AssertionError(
            f"no Pods after {timeout_s}s for {sorted(pending)} in {ns} (pods seen: {counts});\n"
            f"FailedCreate events:\n  {refusals}"
        )
    return counts


def namespaced_objects(kube: controlplane.ControlPlane, ns: str) -> list[str]:
    """Every object left in ``ns``, of every listable namespaced kind, except Events."""
    kinds = [
        k
        for k in kube.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").split()
        if k not in ("events", "events.events.k8s.io")
    ]
    out = kube.kubectl("get", ",".join(kinds), "-n", ns, "--ignore-not-found", "-o", "json").strip()
    items = json.loads(out)["items"] if out else []  # --ignore-not-found prints nothing when nothing is left
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items]


def cluster_objects_of(kube: controlplane.ControlPlane, release: str) -> list[str]:
    """Cluster-scoped objects labelled as part of ``release``."""
    kinds = kube.kubectl("api-resources", "--verbs=list", "--namespaced=false", "-o", "name").split()
    out = kube.kubectl("get", ",".join(kinds), "-l", f"app.kubernetes.io/instance={release}", "-o", "json").strip()
    items = json.loads(out)["items"] if out else []
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items]


wait_until = poll  # the slow-condition poll of support.procs
