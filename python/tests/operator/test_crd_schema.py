"""The CRD's schema and CEL rules: bad specs are refused by the API (422, field named)."""

from __future__ import annotations

import json
from typing import Any

import actorfactory as af
import controlplane
import pytest
from actorfactory import new_namespace
from kubernetes.client.exceptions import ApiException

pytestmark = [pytest.mark.kube, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def ns(kube: controlplane.ControlPlane) -> str:
    return new_namespace(kube, "asya-v")  # not watched by any operator


def refused(api: Any, ns: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as info:
        af.create(api, ns, body)
    assert info.value.status == 422, info.value.body
    return str(json.loads(info.value.body)["message"])


def test_min_replicas_above_max_is_refused(api: Any, ns: str) -> None:
    body = af.actor_body("a1", scaling={"enabled": True, "minReplicas": 5, "maxReplicas": 2})
    msg = refused(api, ns, body)
    assert "spec.scaling.minReplicas" in msg and "maxReplicas" in msg


def test_name_that_is_not_a_dns_label_is_refused(api: Any, ns: str) -> None:
    msg = refused(api, ns, af.actor_body("my.actor"))  # a valid object name, not a DNS-1123 label
    assert "metadata.name must be a DNS-1123 label" in msg


def test_template_without_runtime_container_is_refused(api: Any, ns: str) -> None:
    body = af.actor_body("a2")
    body["spec"]["workload"]["template"]["spec"]["containers"][0]["name"] = "main"
    msg = refused(api, ns, body)
    assert "spec.workload.template.spec.containers" in msg and '"asya-runtime"' in msg


def test_container_named_like_the_sidecar_is_refused(api: Any, ns: str) -> None:
    body = af.actor_body("a3")
    body["spec"]["workload"]["template"]["spec"]["containers"].append({"name": "asya-sidecar", "image": "x"})
    msg = refused(api, ns, body)
    assert '"asya-sidecar" is reserved' in msg


def test_unknown_workload_type_and_negative_timeout_are_refused(api: Any, ns: str) -> None:
    body = af.actor_body("a4", timeout={"processing": 0})
    body["spec"]["workload"]["type"] = "Job"
    msg = refused(api, ns, body)
    assert "spec.workload.type" in msg and "spec.timeout.processing" in msg


def test_missing_transport_is_refused(api: Any, ns: str) -> None:
    body = af.actor_body("a5")
    del body["spec"]["transport"]
    assert "spec.transport" in refused(api, ns, body)


def test_defaults_are_filled_in(api: Any, ns: str) -> None:
    spec = af.create(api, ns, af.actor_body("a6"))["spec"]
    # replicas (1) and workload.type (Deployment) have 0.1.x aliases, so the operator defaults them:
    # a schema default would make every workload.kind / workload.replicas conflict with it
    assert "replicas" not in spec and "type" not in spec["workload"]
    assert spec["scaling"] == {
        "enabled": False,
        "minReplicas": 0,
        "maxReplicas": 10,
        "queueLength": 5,
        "pollingInterval": 10,
        "cooldownPeriod": 60,
    }
    assert spec["timeout"] == {"processing": 300, "gracefulShutdown": 30}
    assert spec["queue"] == {"deletionPolicy": "Retain"}
    assert spec["retry"]["backoff"] == {"initialSeconds": 1, "maxSeconds": 300}


def test_end_actors_need_the_crew_container(api: Any, ns: str) -> None:
    body = af.actor_body("happy-end")
    body["spec"]["workload"]["template"]["spec"]["containers"][0]["name"] = "main"
    msg = refused(api, ns, body)
    assert 'need a container named "asya-crew"' in msg and '"asya-runtime" (the crew runs in it)' in msg
    body = af.actor_body("error-end")
    body["spec"]["workload"]["template"]["spec"]["containers"] = [{"name": "asya-crew", "image": "crew:1"}]
    assert af.create(api, ns, body)["metadata"]["name"] == "error-end"
