"""An AsyncActor gets its queue, runtime ConfigMap and workload, and reports status."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import actorfactory as af
import pytest
from actorfactory import wait_for
from kubernetes import client

pytestmark = [pytest.mark.kube, pytest.mark.timeout(120)]


def local_queue_names(folder: Path) -> set[str]:
    with sqlite3.connect(folder / "queues.sqlite3") as conn:
        return {r[0] for r in conn.execute("SELECT name FROM queues")}


def test_children_queue_and_status(api: Any, namespace: str, local_queues: Path) -> None:
    af.create(api, namespace, af.actor_body("echo", replicas=2))
    apps = client.AppsV1Api(api)
    dep = wait_for(lambda: apps.read_namespaced_deployment("echo", namespace), what="deployment")
    pod = dep.spec.template.spec
    names = [c.name for c in pod.containers]
    assert names == ["asya-runtime", "asya-sidecar"]
    runtime, sidecar = pod.containers
    assert runtime.command == ["python3", "/opt/asya/asya_runtime.py"]
    env = {e.name: e for e in sidecar.env}
    assert env["ASYA_ACTOR"].value == "echo"
    assert env["ASYA_TRANSPORT"].value == "local"
    assert env["ASYA_SOCKET_DIR"].value == "/var/run/asya"
    assert sidecar.security_context.read_only_root_filesystem is True
    assert dep.spec.replicas == 2
    assert dep.metadata.owner_references[0].kind == "AsyncActor"
    cm = client.CoreV1Api(api).read_namespaced_config_map("echo-asya-runtime", namespace)
    assert "def main" in cm.data["asya_runtime.py"]
    actor = wait_for(
        lambda: (a := af.get(api, namespace, "echo")).get("status", {}).get("observedGeneration") == 1 and a,
        what="status",
    )
    assert af.condition(actor, "QueueReady")["status"] == "True"
    assert af.condition(actor, "ScalingReady")["reason"] == "FixedReplicas"
    # no kubelet: pods never become ready, and the status says so in words
    assert af.condition(actor, "WorkloadReady")["status"] == "False"
    assert actor["status"]["status"] == "Pending"
    assert "asya-echo" in local_queue_names(local_queues)
    assert "asya-dlq" in local_queue_names(local_queues)


def test_statefulset_workload(api: Any, namespace: str) -> None:
    body = af.actor_body("stateful", replicas=1)
    body["spec"]["workload"]["type"] = "StatefulSet"
    af.create(api, namespace, body)
    sts = wait_for(lambda: client.AppsV1Api(api).read_namespaced_stateful_set("stateful", namespace), what="sts")
    assert [c.name for c in sts.spec.template.spec.containers] == ["asya-runtime", "asya-sidecar"]
    assert sts.spec.template.spec.termination_grace_period_seconds == 30
    wait_for(
        lambda: af.get(api, namespace, "stateful").get("status", {}).get("observedGeneration") == 1,
        what="status",
    )


def test_end_actor_runs_the_crew(api: Any, namespace: str) -> None:
    body = af.actor_body("happy-end")
    body["spec"]["workload"]["template"]["spec"]["containers"] = [{"name": "asya-crew", "image": "crew:1"}]
    af.create(api, namespace, body)
    dep = wait_for(lambda: client.AppsV1Api(api).read_namespaced_deployment("happy-end", namespace), what="dep")
    (crew,) = dep.spec.template.spec.containers
    assert crew.command == ["python", "-m", "asya.crew", "happy-end"]
    assert {e.name: e.value for e in crew.env}["ASYA_ACTOR"] == "happy-end"
