"""Pure: the rendered workload carries the sidecar, socket volume, runtime and restrictions."""

from __future__ import annotations

import json
from typing import Any

import actorfactory as af
import pytest

from asya.engine import aliases
from asya.operator import config, reconciling
from asya.operator.reconciling import specs, workload

RABBIT = config.TransportConfig(
    name="rabbit", type="rabbitmq", url="amqp://op:s3cret@broker:5672/", url_secret=config.SecretKeyRef("mq", "url")
)
LOCAL = config.TransportConfig(name="local", type="local", url="/data/q")
CFG = config.OperatorConfig(transports={"rabbit": RABBIT, "local": LOCAL}, gateway_url="http://gw:8080")


def actor(**spec: Any) -> specs.ActorSpec:
    b = af.actor_body("echo", **spec)
    b["metadata"].update(namespace="ns", uid="u-1", generation=1)
    return specs.parse_actor(b)


def containers(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in manifest["spec"]["template"]["spec"]["containers"]}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_sidecar_is_injected_with_the_env_contract() -> None:
    m = workload.render_workload(actor(sidecar={"prefetch": 4}, timeout={"processing": 17}), RABBIT, CFG)
    side = containers(m)["asya-sidecar"]
    assert side["command"] == ["python", "-m", "asya.sidecar"]
    assert side["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    e = env(side)
    assert e["ASYA_ACTOR"] == "echo"
    assert e["ASYA_TRANSPORT"] == "rabbitmq"
    assert e["ASYA_TRANSPORT_URL"] == {"secretKeyRef": {"name": "mq", "key": "url"}}
    assert e["ASYA_SOCKET_DIR"] == "/var/run/asya"
    assert e["ASYA_PROCESSING_TIMEOUT_S"] == "17"
    assert e["ASYA_PREFETCH"] == "4"
    assert e["ASYA_GATEWAY_URL"] == "http://gw:8080"
    assert side["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert side["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_gateway_report_token_reaches_sidecar_and_crew_by_secret_reference_only() -> None:
    token = config.SecretKeyRef("asya-gateway-auth", "report-token")
    cfg = config.OperatorConfig(transports=CFG.transports, gateway_url="http://gw:8080", gateway_token_secret=token)
    side = containers(workload.render_workload(actor(), RABBIT, cfg))["asya-sidecar"]
    ref = {"secretKeyRef": {"name": "asya-gateway-auth", "key": "report-token"}}
    assert env(side)["ASYA_GATEWAY_TOKEN"] == ref
    b = af.actor_body("happy-end")
    b["spec"]["workload"]["template"]["spec"]["containers"] = [{"name": "asya-crew", "image": "crew:1"}]
    b["metadata"].update(namespace="ns", uid="u")
    crew = containers(workload.render_workload(specs.parse_actor(b), RABBIT, cfg))["asya-crew"]
    assert env(crew)["ASYA_GATEWAY_TOKEN"] == ref
    # no gateway, no token: a sidecar never sends a token to a URL nobody configured
    bare = config.OperatorConfig(transports=CFG.transports, gateway_token_secret=token)
    assert "ASYA_GATEWAY_TOKEN" not in env(containers(workload.render_workload(actor(), RABBIT, bare))["asya-sidecar"])


def test_no_secret_value_ever_reaches_a_manifest() -> None:
    a = actor(scaling={"enabled": True})
    children, _ = reconciling.desired_children(a, RABBIT, CFG, "print('runtime')")
    assert "s3cret" not in json.dumps(children)


def test_runtime_is_started_from_the_configmap_file() -> None:
    a = actor()
    m = workload.render_workload(a, LOCAL, CFG)
    rt = containers(m)["asya-runtime"]
    assert rt["command"] == ["python3", "/opt/asya/asya_runtime.py"]
    assert env(rt)["ASYA_HANDLER"] == "handlers.echo"
    assert env(rt)["ASYA_SOCKET_DIR"] == "/var/run/asya"
    assert env(rt)["ASYA_RUNTIME_DRAIN_S"] == "25"  # gracefulShutdown 30 - 5
    mounts = {v["name"]: v["mountPath"] for v in rt["volumeMounts"]}
    assert mounts == {"asya-socket": "/var/run/asya", "asya-runtime": "/opt/asya", "asya-tmp": "/tmp"}
    volumes = {v["name"]: v for v in m["spec"]["template"]["spec"]["volumes"]}
    assert volumes["asya-socket"] == {"name": "asya-socket", "emptyDir": {}}
    assert volumes["asya-runtime"]["configMap"]["name"] == "echo-asya-runtime"
    cm = workload.render_runtime_configmap(a, "SOURCE")
    assert cm["data"] == {"asya_runtime.py": "SOURCE"}


def test_restricted_security_context_and_grace_period() -> None:
    m = workload.render_workload(actor(timeout={"gracefulShutdown": 77}), LOCAL, CFG)
    pod = m["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 77
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_an_explicit_user_security_choice_on_the_runtime_wins() -> None:
    a = af.actor_body("echo")
    a["spec"]["workload"]["template"]["spec"]["containers"][0]["securityContext"] = {"readOnlyRootFilesystem": False}
    a["metadata"].update(namespace="ns", uid="u")
    rt = containers(workload.render_workload(specs.parse_actor(a), LOCAL, CFG))["asya-runtime"]
    assert rt["securityContext"]["readOnlyRootFilesystem"] is False
    assert rt["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_actor_env_overrides_operator_defaults_but_not_the_contract() -> None:
    cfg = config.OperatorConfig(sidecar=config.SidecarDefaults(env=({"name": "LOG", "value": "info"},)))
    a = actor(sidecar={"env": [{"name": "LOG", "value": "debug"}, {"name": "ASYA_ACTOR", "value": "evil"}]})
    e = env(containers(workload.render_workload(a, LOCAL, cfg))["asya-sidecar"])
    assert e["LOG"] == "debug"
    assert e["ASYA_ACTOR"] == "echo"


def test_replicas_are_left_to_keda_when_scaling() -> None:
    assert workload.render_workload(actor(replicas=3), LOCAL, CFG)["spec"]["replicas"] == 3
    assert "replicas" not in workload.render_workload(actor(scaling={"enabled": True}), LOCAL, CFG)["spec"]


def test_statefulset_gets_a_service_name_and_owner() -> None:
    a = af.actor_body("echo")
    a["spec"]["workload"]["type"] = "StatefulSet"
    a["metadata"].update(namespace="ns", uid="u-9")
    m = workload.render_workload(specs.parse_actor(a), LOCAL, CFG)
    assert m["kind"] == "StatefulSet" and m["spec"]["serviceName"] == "echo"
    assert m["metadata"]["ownerReferences"][0]["uid"] == "u-9"
    assert m["spec"]["selector"] == {"matchLabels": {"asya.sh/actor": "echo"}}


def test_reserved_volume_names_are_refused() -> None:
    a = af.actor_body("echo")
    a["spec"]["workload"]["template"]["spec"]["volumes"] = [{"name": "asya-runtime", "emptyDir": {}}]
    a["metadata"].update(namespace="ns", uid="u")
    with pytest.raises(specs.SpecError, match="reserved for the operator"):
        workload.render_workload(specs.parse_actor(a), LOCAL, CFG)


def test_the_users_template_is_not_mutated_and_fingerprints_are_stable() -> None:
    a = actor()
    before = json.dumps(a.template, sort_keys=True)
    first, _ = reconciling.desired_children(a, LOCAL, CFG, "src")
    second, _ = reconciling.desired_children(a, LOCAL, CFG, "src")
    assert json.dumps(a.template, sort_keys=True) == before
    assert first == second
    changed, _ = reconciling.desired_children(a, LOCAL, CFG, "src v2")
    h = reconciling.HASH_ANNOTATION
    assert changed[0]["metadata"]["annotations"][h] != first[0]["metadata"]["annotations"][h]


def test_end_actors_run_the_crew_without_a_sidecar() -> None:
    b = af.actor_body("happy-end")
    b["spec"]["workload"]["template"]["spec"]["containers"] = [
        {"name": "asya-crew", "image": "crew:1", "env": [{"name": "ASYA_STORAGE_URL", "value": "s3://b/p"}]}
    ]
    b["metadata"].update(namespace="ns", uid="u")
    a = specs.parse_actor(b)
    children, _ = reconciling.desired_children(a, RABBIT, CFG, "src")
    assert [c["kind"] for c in children] == ["Deployment"]  # no runtime ConfigMap
    pod = children[0]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["asya-crew"]
    crew = pod["containers"][0]
    assert crew["command"] == ["python", "-m", "asya.crew", "happy-end"]
    e = env(crew)
    assert e["ASYA_ACTOR"] == "happy-end" and e["ASYA_STORAGE_URL"] == "s3://b/p"
    assert e["ASYA_TRANSPORT_URL"] == {"secretKeyRef": {"name": "mq", "key": "url"}}
    assert crew["securityContext"]["readOnlyRootFilesystem"] is True


def test_an_actors_custom_end_actors_reach_the_sidecar_untouched() -> None:
    custom = [
        {"name": "ASYA_STEP_HAPPY_END", "value": "my-happy"},
        {"name": "ASYA_STEP_ERROR_END", "value": "my-error"},
    ]
    # an operator-wide default in the same env layer must not win over the actor's choice
    cfg = config.OperatorConfig(
        transports=CFG.transports,
        sidecar=config.SidecarDefaults(env=({"name": "ASYA_STEP_HAPPY_END", "value": "fleet-happy"},)),
    )
    children, _ = reconciling.desired_children(actor(sidecar={"env": custom}), RABBIT, cfg, "print('runtime')")
    (deployment,) = [c for c in children if c["kind"] == "Deployment"]
    e = env(containers(deployment)["asya-sidecar"])
    assert e["ASYA_STEP_HAPPY_END"] == "my-happy" and e["ASYA_STEP_ERROR_END"] == "my-error"
    # the operator sets neither spelling itself, so the sidecar's alias check sees one name each
    plain = {k: v for k, v in e.items() if isinstance(v, str)}
    resolved = aliases.resolve(plain)
    assert (resolved["ASYA_HAPPY_END_ACTOR"], resolved["ASYA_ERROR_END_ACTOR"]) == ("my-happy", "my-error")


def test_a_scaled_workload_is_created_at_min_replicas_without_changing_its_fingerprint() -> None:
    a = actor(scaling={"enabled": True, "minReplicas": 0, "maxReplicas": 4})
    children, _ = reconciling.desired_children(a, RABBIT, CFG, "print('runtime')")
    (rendered,) = [c for c in children if c["kind"] == "Deployment"]
    created = workload.creation_manifest(a, rendered)
    assert created["spec"]["replicas"] == 0 and "replicas" not in rendered["spec"]
    hash_of = reconciling.HASH_ANNOTATION
    assert created["metadata"]["annotations"][hash_of] == rendered["metadata"]["annotations"][hash_of]
    fixed = actor(replicas=3)
    (plain,) = [c for c in reconciling.desired_children(fixed, RABBIT, CFG, "x")[0] if c["kind"] == "Deployment"]
    assert workload.creation_manifest(fixed, plain) is plain
    handover = workload.replicas_handover({**created, "spec": {**created["spec"], "replicas": 5}})
    assert handover == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": "ns"},
        "spec": {"replicas": 5},
    }
