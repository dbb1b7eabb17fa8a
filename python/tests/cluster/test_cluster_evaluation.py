"""Issue 11: the umbrella chart with its evaluation subcharts (RabbitMQ, PostgreSQL, S3) running in the cluster.

No registry serves the subcharts' upstream images here, so they run the images of images/eval-*
(``ci/images.sh load eval``; images/eval-values.yaml points the subcharts at them). The install
goes to its own restricted namespace beside the asya-e2e one of conftest's ``install``; each
operator watches only its own namespace. Nothing here uses the host's servers: the broker, the
object store and the database are the release's own pods.
"""

from __future__ import annotations

import base64
import json
import os
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from conftest import CLIENT_TOKEN, ROOT, Cluster, _helm_env, _run, asya_values, clear_namespace, ready, wait_until

from asya.client.gateway import Client
from asya.engine import aliases

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

NS = "asya-eval"
RELEASE = "asya-eval"  # not `asya`: the operator's ClusterRole(Binding) is named after the release
VERSION = tomllib.loads((ROOT / "python/pyproject.toml").read_text())["project"]["version"]
EVAL_VALUES = ROOT / "images/eval-values.yaml"
# The broker's Service is not the default `asya-rabbitmq`: Kubernetes gives every pod created after a
# Service the legacy service-link variables <SERVICE>_PORT=tcp://<ip>:<port> etc., so with that name every
# Asya pod gets ASYA_RABBITMQ_PORT=tcp://..., which asya.engine.aliases reads as the 0.1.x broker port and
# refuses next to ASYA_TRANSPORT_URL (gateway and crew crash-loop with ConflictingSettings). See
# test_default_broker_service_name_leaves_asya_settings_alone; drop this override once it passes.
BROKER = "eval-rabbitmq"
SUBCHARTS = {"rabbitmq": f"{BROKER}-0", "postgresql": "asya-postgresql-0", "s3": "asya-s3-0"}
ACTORS = {"normalize", "chunk", "classify", "happy-end", "error-end"}
ROUTE = ["normalize", "chunk", "classify"]
TEXT = (
    "The football match ended with a late goal and the fans sang for an hour. "
    "The new laptop ships with a faster chip and more memory for developers who compile all day."
)


@dataclass
class EvalInstall:
    cluster: Cluster
    gateway_url: str
    timings: dict[str, float]


def _pod_problems(cluster: Cluster) -> list[str]:
    """One line per pod of NS that is not Ready: its phase, each container's state and its last log lines."""
    lines = []
    for pod in cluster.pods(NS):
        if ready(pod) or pod["status"].get("phase") == "Succeeded":
            continue
        name = pod["metadata"]["name"]
        states = []
        statuses = (pod["status"].get("initContainerStatuses") or []) + (pod["status"].get("containerStatuses") or [])
        for c in statuses:
            state = c.get("state", {})
            kind = next(iter(state), "?")
            detail = state.get(kind, {})
            last = (c.get("lastState") or {}).get("terminated") or {}
            states.append(
                f"{c['name']}: {kind} {detail.get('reason', '')} restarts={c.get('restartCount', 0)}"
                + (f" last exit {last.get('exitCode')}" if last else "")
            )
            if c.get("restartCount") or kind != "running":
                try:
                    log = cluster.kubectl("-n", NS, "logs", name, "-c", c["name"], "--tail=5",
                                          *(["--previous"] if last else []))  # fmt: skip
                except RuntimeError:
                    log = ""
                states.extend(f"    | {line}" for line in log.strip().splitlines())
        conditions = pod["status"].get("conditions") or []
        why = [f"{c['type']}={c['status']} {c.get('reason', '')} {c.get('message', '')}".strip() for c in conditions]
        lines.append(f"pod {name} ({pod['status'].get('phase')}; {'; '.join(why)}):\n  " + "\n  ".join(states))
    return lines


def _fail_naming_pods(cluster: Cluster, what: str) -> None:
    problems = _pod_problems(cluster)
    pytest.fail(f"{what}; pods not Ready in {NS}:\n" + ("\n".join(problems) or "(none: every pod is Ready)"))


def _other_operators_watching(cluster: Cluster) -> list[str]:
    """Operators of other namespaces that would also reconcile NS's AsyncActors (they would fight ours)."""
    found = []
    for dep in cluster.json("get", "deployments", "-A", "-l", "app.kubernetes.io/component=operator")["items"]:
        if dep["metadata"]["namespace"] == NS:
            continue
        env = {
            e["name"]: e.get("value", "")
            for c in dep["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])
        }
        watched = [w for w in env.get("ASYA_OPERATOR_NAMESPACES", "").split(",") if w]
        if not watched or NS in watched:
            found.append(
                f"{dep['metadata']['namespace']}/{dep['metadata']['name']} (watches {watched or 'everything'})"
            )
    return found


@pytest.fixture(scope="module")
def eval_install(
    cluster: Cluster, cluster_images: float, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EvalInstall]:
    """charts/asya with the evaluation subcharts on images/eval-* plus the example pipeline, in NS; every pod Ready."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    _run(ROOT / "ci/images.sh", "load", "eval", timeout=3600)
    timings["eval_images_s"] = time.monotonic() - t0
    rivals = _other_operators_watching(cluster)
    assert not rivals, f"operators outside {NS} would reconcile its actors too: {rivals}; set their watchNamespaces"
    helm, env = _helm_env(cluster.kubeconfig)
    work = tmp_path_factory.mktemp("cluster-eval")
    charts = Path(_run(ROOT / "ci/charts.sh", "offline", work / "charts", env=env).splitlines()[-1])
    no_pv = {"persistence": {"enabled": False}}  # the one-node cluster has no volume provisioner
    values = {
        "global": {"imageRegistry": "localhost"},  # Asya's own images: localhost/asya-<name>:<version>
        **asya_values(NS),
        **{sub: no_pv for sub in SUBCHARTS},
    }
    values["rabbitmq"] = {**no_pv, "fullnameOverride": BROKER}
    (work / "values.json").write_text(json.dumps(values))
    clear_namespace(cluster, NS, helm, env)  # an earlier run that died before its teardown
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip
    common = ["--namespace", NS, "--server-side=true", "--wait", "--timeout", "300s"]
    try:
        t0 = time.monotonic()
        try:
            _run(helm, "install", RELEASE, charts / "asya", "-f", EVAL_VALUES, "-f", work / "values.json", *common,
                 env=env, timeout=600)  # fmt: skip
            _run(helm, "install", "text", charts / "asya-actor", "-f", ROOT / "examples/01-text-pipeline/helm-values.yaml",
                 *common, env=env, timeout=600)  # fmt: skip
        except RuntimeError as e:
            _fail_naming_pods(cluster, f"helm install failed: {str(e)[-1500:]}")

        def actors_ready() -> bool:
            items = cluster.json("-n", NS, "get", "asyncactors")["items"]
            phases = {a["metadata"]["name"]: (a.get("status") or {}).get("status") for a in items}
            return set(phases) >= ACTORS and all(p == "Ready" for p in phases.values())

        def all_pods_ready() -> bool:
            pods = [p for p in cluster.pods(NS) if p["status"].get("phase") != "Succeeded"]
            return bool(pods) and all(ready(p) for p in pods)

        try:
            wait_until(lambda: actors_ready() and all_pods_ready(), 300, "every AsyncActor and pod Ready")
        except AssertionError as e:
            _fail_naming_pods(cluster, str(e)[:500])
        timings["install_s"] = time.monotonic() - t0
        svc = cluster.json("-n", NS, "get", "service", "asya-gateway")
        yield EvalInstall(cluster, f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}", timings)
    finally:
        clear_namespace(cluster, NS, helm, env)


def _secret(cluster: Cluster, name: str) -> dict[str, str]:
    data = cluster.json("-n", NS, "get", "secret", name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _cluster_ip(cluster: Cluster, service: str, port_name: str) -> str:
    """host:port of a Service's ClusterIP: kube-proxy programs them on this host too."""
    svc = cluster.json("-n", NS, "get", "service", service)
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == port_name)
    return f"{svc['spec']['clusterIP']}:{port}"


def test_eval_values_follow_the_asya_version() -> None:
    """images/eval-values.yaml names the tags ci/images.sh builds (Asya's version)."""
    values = yaml.safe_load(EVAL_VALUES.read_text())
    for sub in SUBCHARTS:
        assert values[sub]["image"] == {"registry": "localhost", "repository": f"asya-eval-{sub}", "tag": VERSION}


def test_default_broker_service_name_leaves_asya_settings_alone() -> None:
    """What a pod of a default install (Service asya-rabbitmq in its namespace) has in its environment:
    the chart's ASYA_TRANSPORT_URL and Kubernetes' service-link variables of that Service."""
    url = "amqp://asya:asya-evaluation-only@asya-rabbitmq.asya.svc:5672/"
    links = {
        "ASYA_RABBITMQ_SERVICE_HOST": "10.96.0.20",
        "ASYA_RABBITMQ_SERVICE_PORT": "5672",
        "ASYA_RABBITMQ_PORT": "tcp://10.96.0.20:5672",
        "ASYA_RABBITMQ_PORT_5672_TCP": "tcp://10.96.0.20:5672",
        "ASYA_RABBITMQ_PORT_5672_TCP_ADDR": "10.96.0.20",
        "ASYA_RABBITMQ_PORT_5672_TCP_PORT": "5672",
        "ASYA_RABBITMQ_PORT_5672_TCP_PROTO": "tcp",
    }
    assert aliases.resolve({"ASYA_TRANSPORT_URL": url, **links})["ASYA_TRANSPORT_URL"] == url


# Not yet in `make test`: its one cluster run so far failed on the service-links bug below, and the
# workaround (broker named eval-rabbitmq) has not had a green run. ASYA_CLUSTER_EVAL=1 runs it.
needs_opt_in = pytest.mark.skipif(
    not os.environ.get("ASYA_CLUSTER_EVAL"), reason="evaluation-subchart install: opt in with ASYA_CLUSTER_EVAL=1"
)


@needs_opt_in
def test_every_pod_ready_on_the_evaluation_images_under_restricted(eval_install: EvalInstall) -> None:
    """Broker, database and object store are pods of the release, on our images, as the chart's users, Ready."""
    cluster = eval_install.cluster
    ns = cluster.json("get", "namespace", NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = {p["metadata"]["name"]: p for p in cluster.pods(NS) if p["status"].get("phase") != "Succeeded"}
    for sub, pod_name in SUBCHARTS.items():
        assert pod_name in pods, f"no {pod_name} among {sorted(pods)}"
        spec = pods[pod_name]["spec"]
        images = {c["image"] for c in spec["containers"] + spec.get("initContainers", [])}
        assert images == {f"localhost/asya-eval-{sub}:{VERSION}"}, images
        assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in spec["containers"])
    names = sorted(p.rsplit("-", 2)[0] for p in pods)
    for want in ("asya-gateway", f"{RELEASE}-operator", "happy-end", "error-end", "normalize", "chunk", "classify"):
        assert want in names, f"no {want} pod among {names}"
    assert not [n for n, p in pods.items() if not ready(p)], _pod_problems(cluster)
    restarts = {n: sum(c["restartCount"] for c in p["status"]["containerStatuses"]) for n, p in pods.items()}
    assert not any(restarts.values()), f"containers restarted: {restarts}"
    print(f"\n[eval] timings: {eval_install.timings}")


@needs_opt_in
def test_job_reaches_happy_end_and_its_result_is_in_the_cluster_s3(eval_install: EvalInstall) -> None:
    """A job through the gateway (on the evaluation PostgreSQL) crosses the actor pods over the evaluation
    RabbitMQ to happy-end, which writes the result to the evaluation S3."""
    cluster = eval_install.cluster
    with Client(eval_install.gateway_url, CLIENT_TOKEN) as client:
        job = client.submit(ROUTE, {"doc": "eval-1", "text": TEXT})
        events = [e.data for e in client.watch(job["id"])]
        final = client.get(job["id"])
    assert final["status"] == "succeeded", final
    assert [e.get("actor") for e in events if e.get("actor")][:2] == ["normalize", "chunk"], events
    children = final["result"]["children"]
    assert children["total"] >= 2 and children["succeeded"] == children["total"], children

    keys = _secret(cluster, "asya-s3")
    s3 = boto3.client(
        "s3", endpoint_url=f"http://{_cluster_ip(cluster, 'asya-s3', 's3')}", region_name="us-east-1",
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip

    def results() -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="asya-results")
        return [o["Key"] for page in pages for o in page.get("Contents", []) if job["id"] in o["Key"]]

    found = wait_until(results, 30, f"a result of job {job['id']} in the cluster's S3")
    body = s3.get_object(Bucket="asya-results", Key=found[0])["Body"].read()
    assert body, found

    # the actors' queues are on the release's broker (its management API, with the chart's credentials)
    auth = _secret(cluster, "asya-rabbitmq")
    req = urllib.request.Request(f"http://{_cluster_ip(cluster, BROKER, 'management')}/api/queues")
    token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        queues: list[dict[str, Any]] = json.loads(resp.read())
    names = " ".join(q["name"] for q in queues)
    for actor in ROUTE:
        assert actor in names, f"no queue of {actor} on the cluster's RabbitMQ: {names}"
