"""AsyncActor manifests in the Asya 0.1.x shape: applied server-side, rendered as they ask.

Each manifest below is written here from the 0.1.x field list (one field each, no copy of
0.1.x files). ``kubectl apply --server-side`` sends them to the real apiserver, which
refuses undeclared fields; the object it stores (with the CRD's defaults) is then fed to
the operator's pure reconcilers, so the test sees what the operator would render from
exactly what the cluster holds. The last tests run the shared operator on two of them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import actorfactory as af
import controlplane
import pytest
import yaml
from actorfactory import new_namespace, wait_for

from asya.operator import config
from asya.operator.reconciling import desired_children, specs, status

pytestmark = [pytest.mark.kube, pytest.mark.timeout(90)]

RUNTIME = """
        containers:
        - name: asya-runtime
          image: python:3.13-slim
          env:
          - name: ASYA_HANDLER
            value: handlers.echo
"""

MANIFESTS: dict[str, str] = {
    "workload-kind": f"""
metadata: {{name: c-kind}}
spec:
  transport: rabbitmq
  workload:
    kind: StatefulSet
    template:
      spec:{RUNTIME}""",
    "workload-replicas": f"""
metadata: {{name: c-replicas}}
spec:
  transport: rabbitmq
  scaling: {{enabled: false}}
  workload:
    kind: Deployment
    replicas: 3
    template:
      spec:{RUNTIME}""",
    "python-executable": f"""
metadata: {{name: c-python}}
spec:
  transport: rabbitmq
  workload:
    kind: Deployment
    pythonExecutable: /opt/conda/bin/python
    template:
      spec:{RUNTIME}""",
    "scaling-advanced": f"""
metadata: {{name: c-advanced}}
spec:
  transport: rabbitmq
  scaling:
    enabled: true
    minReplicas: 0
    maxReplicas: 50
    advanced:
      formula: "ceil(queueLength / 10)"
      target: "10"
      activationTarget: "5"
      metricType: AverageValue
      restoreToOriginalReplicaCount: true
  workload:
    kind: Deployment
    template:
      spec:{RUNTIME}""",
    "end-actor-runtime": """
metadata: {name: happy-end}
spec:
  transport: rabbitmq
  workload:
    kind: Deployment
    template:
      spec:
        containers:
        - name: asya-runtime
          image: asya-crew:0.1.0
          env:
          - {name: ASYA_HANDLER, value: handlers.end_handlers.happy_end_handler}
          - {name: ASYA_HANDLER_MODE, value: envelope}
          - {name: ASYA_STORAGE_URL, value: "file:///data/results"}
""",
    "template-metadata": f"""
metadata: {{name: c-meta}}
spec:
  transport: rabbitmq
  workload:
    kind: Deployment
    template:
      metadata:
        name: c-meta-pod
        labels: {{team: ml}}
        annotations: {{note: kept}}
      spec:{RUNTIME}""",
    "runtime-command": f"""
metadata: {{name: c-command}}
spec:
  transport: rabbitmq
  workload:
    kind: Deployment
    template:
      spec:{RUNTIME}          command: [python3, /app/main.py]
          args: [--fast]
""",
    "socket": f"""
metadata: {{name: c-socket}}
spec:
  transport: rabbitmq
  socket: {{dir: /custom/path, maxSize: "20971520"}}
  workload:
    kind: Deployment
    template:
      spec:{RUNTIME}""",
    "runtime-env": f"""
metadata: {{name: c-env}}
spec:
  transport: rabbitmq
  workload:
    kind: Deployment
    template:
      spec:{RUNTIME}          - name: ASYA_ENABLE_VALIDATION
            value: "false"
          - name: ASYA_INCLUDE_ROUTE_INFO
            value: "true"
""",
}

CFG = config.OperatorConfig(
    transports={
        "rabbitmq": config.TransportConfig(
            "rabbitmq", "rabbitmq", url="amqp://broker", url_secret=config.SecretKeyRef("asya-rabbitmq", "url")
        )
    },
    sidecar=config.SidecarDefaults(image="example.org/asya-sidecar:test"),
)


def body(text: str, transport: str = "rabbitmq") -> dict[str, Any]:
    doc = yaml.safe_load(text)
    doc["spec"]["transport"] = transport
    return {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor", **doc}


def apply_server_side(
    kube: controlplane.ControlPlane, ns: str, doc: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    cmd = [str(kube.bin / "kubectl"), f"--kubeconfig={kube.admin_kubeconfig}", "apply", "--server-side"]
    cmd += ["--field-manager=compat-test", "-n", ns, "-f", "-"]
    return subprocess.run(cmd, input=yaml.safe_dump(doc), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def ns(kube: controlplane.ControlPlane) -> str:
    return new_namespace(kube, "asya-c")  # not watched: only the apiserver and the pure reconcilers


def stored_and_rendered(
    kube: controlplane.ControlPlane, api: Any, ns: str, key: str, cfg: config.OperatorConfig = CFG
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], specs.ActorSpec]:
    """Apply manifest ``key`` server-side; (stored object, children by kind, parsed spec)."""
    doc = body(MANIFESTS[key])
    res = apply_server_side(kube, ns, doc)
    assert res.returncode == 0, res.stderr
    stored = af.get(api, ns, doc["metadata"]["name"])
    actor = specs.parse_actor(stored)
    children, problem = desired_children(actor, cfg.transports["rabbitmq"], cfg, "# runtime")
    assert problem is None
    return stored, {c["kind"]: c for c in children}, actor


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def notices_of(workload: dict[str, Any]) -> str:
    return str(workload["metadata"].get("annotations", {}).get(status.NOTICES_ANNOTATION, ""))


def check_kind(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    assert stored["spec"]["workload"]["kind"] == "StatefulSet" and "type" not in stored["spec"]["workload"]
    assert "StatefulSet" in kids and "Deployment" not in kids


def check_replicas(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    assert stored["spec"]["workload"]["replicas"] == 3
    assert kids["Deployment"]["spec"]["replicas"] == 3


def check_python(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    assert container(kids["Deployment"], "asya-runtime")["command"] == [
        "/opt/conda/bin/python",
        "/opt/asya/asya_runtime.py",
    ]


def check_advanced(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    so = kids["ScaledObject"]["spec"]
    assert so["advanced"]["scalingModifiers"] == {
        "formula": "ceil(queueLength / 10)",
        "target": "10",
        "activationTarget": "5",
        "metricType": "AverageValue",
    }
    assert so["advanced"]["restoreToOriginalReplicaCount"] is True
    assert so["triggers"][0]["name"] == "queueLength"  # what the formula refers to
    assert so["maxReplicaCount"] == 50


def check_end_actor(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    dep = kids["Deployment"]
    crew = container(dep, "asya-runtime")
    assert crew["command"] == ["python", "-m", "asya.crew", "happy-end"]
    assert crew["image"] == "example.org/asya-sidecar:test"  # no crew image configured: the sidecar's
    env = {e["name"]: e.get("value") for e in crew["env"]}
    assert env["ASYA_ACTOR"] == "happy-end" and env["ASYA_STORAGE_URL"] == "file:///data/results"
    names = [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]]
    assert names == ["asya-runtime"] and "ConfigMap" not in kids  # no sidecar, no runtime file
    assert "runs the Asya crew" in notices_of(dep) and "happy_end_handler" in notices_of(dep)


def check_metadata(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    assert stored["spec"]["workload"]["template"]["metadata"]["name"] == "c-meta-pod"  # accepted, kept
    meta = kids["Deployment"]["spec"]["template"]["metadata"]
    assert "name" not in meta and meta["labels"]["team"] == "ml" and meta["annotations"] == {"note": "kept"}
    assert "template.metadata name: ignored" in notices_of(kids["Deployment"])


def check_command(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    runtime = container(kids["Deployment"], "asya-runtime")
    assert runtime["command"] == ["python3", "/opt/asya/asya_runtime.py"] and "args" not in runtime
    text = notices_of(kids["Deployment"])
    assert "command ['python3', '/app/main.py']: replaced" in text and "args ['--fast']: replaced" in text


def check_env(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    text = notices_of(kids["Deployment"])
    assert "ASYA_ENABLE_VALIDATION: not read" in text and "ASYA_INCLUDE_ROUTE_INFO: not read" in text


def check_socket(stored: dict[str, Any], kids: dict[str, dict[str, Any]], actor: specs.ActorSpec) -> None:
    assert stored["spec"]["socket"] == {"dir": "/custom/path", "maxSize": "20971520"}
    assert "spec.socket dir, maxSize: ignored" in notices_of(kids["Deployment"])
    runtime = container(kids["Deployment"], "asya-runtime")
    assert {"name": "ASYA_SOCKET_DIR", "value": "/var/run/asya"} in runtime["env"]


CHECKS: dict[str, Callable[[dict[str, Any], dict[str, dict[str, Any]], specs.ActorSpec], None]] = {
    "workload-kind": check_kind,
    "workload-replicas": check_replicas,
    "python-executable": check_python,
    "scaling-advanced": check_advanced,
    "end-actor-runtime": check_end_actor,
    "template-metadata": check_metadata,
    "runtime-command": check_command,
    "runtime-env": check_env,
    "socket": check_socket,
}


@pytest.mark.parametrize("key", sorted(MANIFESTS))
def test_manifest_applies_server_side_and_renders_what_it_asks(
    kube: controlplane.ControlPlane, api: Any, ns: str, key: str
) -> None:
    stored, kids, actor = stored_and_rendered(kube, api, ns, key)
    CHECKS[key](stored, kids, actor)


def test_the_guide_defaults_are_filled_in(kube: controlplane.ControlPlane, api: Any, ns: str) -> None:
    doc = body(f"metadata: {{name: c-guide}}\nspec:\n  workload:\n    template:\n      spec:{RUNTIME}")
    assert apply_server_side(kube, ns, doc).returncode == 0
    spec = af.get(api, ns, "c-guide")["spec"]
    assert (spec["scaling"]["pollingInterval"], spec["scaling"]["cooldownPeriod"]) == (10, 60)
    assert spec["timeout"]["processing"] == 300


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("type", "Deployment", "spec.workload.type and spec.workload.kind (the 0.1.x name) are one setting"),
        ("replicas", None, "spec.replicas and spec.workload.replicas (the 0.1.x name) are one setting"),
    ],
)
def test_two_names_that_disagree_are_refused(
    kube: controlplane.ControlPlane, ns: str, field: str, value: Any, message: str
) -> None:
    doc = body(MANIFESTS["workload-kind" if field == "type" else "workload-replicas"])
    doc["metadata"]["name"] = f"c-conflict-{field}"
    if field == "type":
        doc["spec"]["workload"]["type"] = value  # kind says StatefulSet
    else:
        doc["spec"]["replicas"] = 2  # workload.replicas says 3
    res = apply_server_side(kube, ns, doc)
    assert res.returncode != 0 and message in res.stderr, res.stderr


def test_hpa_behaviour_comes_from_the_operator_configuration_unless_the_actor_sets_it(
    kube: controlplane.ControlPlane, api: Any, ns: str
) -> None:
    cfg = config.parse_config(
        {"transports": {"rabbitmq": {"type": "rabbitmq", "url": "amqp://b"}}, "scaling": {"behavior": "asya-0.1"}}
    )
    _, kids, _ = stored_and_rendered(kube, api, ns, "scaling-advanced", cfg)
    behavior = kids["ScaledObject"]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert {"type": "Percent", "value": 100, "periodSeconds": 60} in behavior["scaleUp"]["policies"]
    doc = body(MANIFESTS["scaling-advanced"])
    doc["spec"]["scaling"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    assert apply_server_side(kube, ns, doc).returncode == 0
    actor = specs.parse_actor(af.get(api, ns, "c-advanced"))
    kids2 = {c["kind"]: c for c in desired_children(actor, cfg.transports["rabbitmq"], cfg, "")[0]}
    assert kids2["ScaledObject"]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 30}
    }


def test_operator_keeps_a_0_1_statefulset_with_three_replicas_and_reports_what_it_overrides(
    api: Any, kube: controlplane.ControlPlane, namespace: str
) -> None:
    from kubernetes import client

    doc = body(MANIFESTS["workload-kind"], transport="rabbit")
    doc["spec"]["workload"]["replicas"] = 3
    doc["spec"]["workload"]["template"]["metadata"] = {"name": "pod-name"}
    runtime = doc["spec"]["workload"]["template"]["spec"]["containers"][0]
    runtime["command"] = ["python3", "/app/run.py"]
    runtime["env"].append({"name": "ASYA_ENABLE_VALIDATION", "value": "true"})
    res = apply_server_side(kube, namespace, doc)
    assert res.returncode == 0, res.stderr
    sts = wait_for(lambda: client.AppsV1Api(api).read_namespaced_stateful_set("c-kind", namespace), what="sts")
    assert sts.spec.replicas == 3

    def reported() -> dict[str, Any]:
        return af.condition(af.get(api, namespace, "c-kind"), "SpecAsWritten")

    cond = wait_for(lambda: (c := reported()).get("status") == "False" and c, what="SpecAsWritten=False")
    assert cond["reason"] == "SettingsOverridden"
    for words in ("template.metadata name: ignored", "command ['python3', '/app/run.py']: replaced"):
        assert words in cond["message"]
    assert "ASYA_ENABLE_VALIDATION: not read" in cond["message"]


def test_operator_renders_scaling_modifiers_into_the_scaled_object(
    api: Any, kube: controlplane.ControlPlane, namespace: str
) -> None:
    from kubernetes import client

    res = apply_server_side(kube, namespace, body(MANIFESTS["scaling-advanced"], transport="rabbit"))
    assert res.returncode == 0, res.stderr
    objects = client.CustomObjectsApi(api)
    so = wait_for(
        lambda: objects.get_namespaced_custom_object("keda.sh", "v1alpha1", namespace, "scaledobjects", "c-advanced"),
        what="ScaledObject",
    )
    assert so["spec"]["advanced"]["scalingModifiers"]["formula"] == "ceil(queueLength / 10)"
    assert so["spec"]["advanced"]["restoreToOriginalReplicaCount"] is True
    assert so["spec"]["triggers"][0]["name"] == "queueLength"


def test_operator_configuration_of_crew_image_and_hpa_behaviour(
    kube: controlplane.ControlPlane, api: Any, ns: str
) -> None:
    raw = {"transports": {"rabbitmq": {"type": "rabbitmq", "url": "amqp://b"}}, "crew": {"image": "crew:2"}}
    _, kids, _ = stored_and_rendered(kube, api, ns, "end-actor-runtime", config.parse_config(raw))
    assert container(kids["Deployment"], "asya-runtime")["image"] == "crew:2"
    for bad, words in (("fast", "unknown preset 'fast'"), ({"scaleSideways": {}}, "HPA behavior mapping")):
        with pytest.raises(config.ConfigError, match=words):
            config.parse_config({**raw, "scaling": {"behavior": bad}})
