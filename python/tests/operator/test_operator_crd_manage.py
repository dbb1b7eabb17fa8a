"""CRD upgrade: the served CRD is older than the operator's; ASYA_OPERATOR_MANAGE_CRDS brings it up.

"Older" = the CRD of this repository without ``spec.workload.pythonExecutable``, installed
with an update (PUT) so that no field manager keeps the property alive; the API then
prunes the field from new actors. With management off the operator leaves the CRD as it
is; with it on (and leader election, as the chart runs it) the leader applies its
packaged CRD before watching, and an actor using the field is stored and reconciled.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import actorfactory as af
import controlplane
import pytest
from actorfactory import OperatorProcess, new_namespace, wait_for
from kubernetes import client

from asya.operator import crd

CRD = controlplane.ROOT / "crds" / "asyncactor.yaml"
FIELD = "pythonExecutable"
PYTHON = "/opt/conda/bin/python"


def served(kube: controlplane.ControlPlane) -> dict[str, Any]:
    return dict(json.loads(kube.kubectl("get", "crd", crd.CRD_NAME, "-o", "json", "--show-managed-fields")))


def workload_properties(obj: dict[str, Any]) -> dict[str, Any]:
    schema = obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props: dict[str, Any] = schema["properties"]["spec"]["properties"]["workload"]["properties"]
    return props  # not a copy: the fixture edits through it


def actor_with_field(name: str) -> dict[str, Any]:
    body = af.actor_body(name)
    body["spec"]["workload"][FIELD] = PYTHON
    return body


def field_kept_by_api(api: Any, ns: str) -> bool:
    """Does the API store the field? (server-side dry run: nothing is created)"""
    stored = client.CustomObjectsApi(api).create_namespaced_custom_object(
        af.GROUP, af.VERSION, ns, af.PLURAL, actor_with_field("probe"), dry_run="All"
    )
    return FIELD in stored["spec"]["workload"]


def runtime_command(api: Any, ns: str, name: str) -> list[str]:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, ns)
    return list(next(c.command for c in dep.spec.template.spec.containers if c.name == "asya-runtime"))


@pytest.fixture
def older_crd(kube: controlplane.ControlPlane, api: Any, tmp_path: Any) -> Iterator[str]:
    """Serve the CRD without the field; a namespace to probe it in. Restores the real CRD after."""
    now = served(kube)
    old = {"apiVersion": now["apiVersion"], "kind": now["kind"], "spec": copy.deepcopy(now["spec"])}
    old["metadata"] = {k: now["metadata"][k] for k in ("name", "labels", "resourceVersion") if k in now["metadata"]}
    del workload_properties(old)[FIELD]
    path = tmp_path / "older-crd.json"
    path.write_text(json.dumps(old))
    ns = new_namespace(kube, "asya-crd")
    try:
        kube.kubectl("replace", "-f", str(path))
        assert FIELD not in workload_properties(served(kube))
        wait_for(lambda: not field_kept_by_api(api, ns), what="the older schema served (field pruned)")
        yield ns
    finally:
        kube.apply_crds([CRD])
        wait_for(lambda: field_kept_by_api(api, ns), what="the current CRD served again")


@pytest.mark.kube
@pytest.mark.timeout(180)
def test_with_management_off_the_crd_is_left_alone(
    kube: controlplane.ControlPlane, api: Any, older_crd: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns = older_crd
    version = served(kube)["metadata"]["resourceVersion"]
    op = start_operator(ns)  # ASYA_OPERATOR_MANAGE_CRDS unset: the default
    af.create(api, ns, actor_with_field("plain"))
    wait_for(lambda: runtime_command(api, ns, "plain"), timeout_s=60, what=f"reconciled:\n{op.output()[-2000:]}")
    assert runtime_command(api, ns, "plain")[0] == "python3"  # the field was pruned by the old schema
    assert FIELD not in af.get(api, ns, "plain")["spec"]["workload"]
    assert served(kube)["metadata"]["resourceVersion"] == version
    assert "applied CRD" not in op.output()


@pytest.mark.kube
@pytest.mark.timeout(180)
def test_with_management_on_the_leader_upgrades_the_crd_before_watching(
    kube: controlplane.ControlPlane, api: Any, older_crd: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns = older_crd
    op = start_operator(
        ns,
        ASYA_OPERATOR_MANAGE_CRDS="true",
        ASYA_OPERATOR_LEADER_ELECTION="true",
        ASYA_OPERATOR_LEASE_NAMESPACE=ns,
        ASYA_OPERATOR_LEASE_DURATION_S="3",
        ASYA_OPERATOR_RENEW_DEADLINE_S="2",
        ASYA_OPERATOR_RETRY_PERIOD_S="0.5",
    )
    wait_for(lambda: FIELD in workload_properties(served(kube)), timeout_s=60, what=f"CRD:\n{op.output()[-2000:]}")
    managers = {(m["manager"], m["operation"]) for m in served(kube)["metadata"]["managedFields"]}
    assert ("asya-operator", "Apply") in managers
    log = op.output()
    assert log.index("acquired Lease") < log.index("applied CRD asyncactors.asya.sh"), log[-3000:]
    wait_for(lambda: field_kept_by_api(api, ns), what="the new schema served")

    af.create(api, ns, actor_with_field("upgraded"))
    assert af.get(api, ns, "upgraded")["spec"]["workload"][FIELD] == PYTHON
    wait_for(lambda: runtime_command(api, ns, "upgraded"), timeout_s=60, what=f"reconciled:\n{op.output()[-2000:]}")
    assert runtime_command(api, ns, "upgraded")[0] == PYTHON
    assert op.proc.poll() is None


def test_packaged_crd_is_the_repository_crd() -> None:
    """The copy inside the package is what gets applied; it must not drift from crds/."""
    import yaml

    assert crd.packaged_crd() == yaml.safe_load(CRD.read_text())
