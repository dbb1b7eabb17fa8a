"""Fixtures of the one-node cluster suite (issue 11): a real Kubernetes node, the images, the install.

``ci/cluster.sh up`` starts etcd, kube-apiserver, controller-manager, scheduler, containerd +
runc, a kubelet, kube-proxy and CoreDNS on this machine (about 20 s warm); ``ci/images.sh
load`` builds every image under images/ and imports it into the node's containerd. RabbitMQ,
S3 and PostgreSQL are the same real loopback servers the other suites use, reached from the
pods through forwarders on the bridge address (``clusterforward``). The umbrella chart and the
example pipeline are installed with ``helm`` (v4, server-side) into a namespace that enforces
Pod Security "restricted". Set ASYA_KEEP_CLUSTER=1 to leave the cluster up after the session.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from clusterforward import forwarders
from fixtures import services
from fixtures.postgres import PostgresServer
from fixtures.rabbitmq import SCRIPT as RABBITMQ_SCRIPT
from fixtures.rabbitmq import RabbitMQServer
from fixtures.s3 import S3Server
from support.procs import poll

ROOT = Path(__file__).resolve().parents[3]
NS = "asya-e2e"
BRIDGE_IP = "10.244.0.1"  # ci/cluster.sh's NODE_IP: the host side of the pods' bridge
CLIENT_TOKEN = "cluster-client-token"  # throwaway test credentials
REPORT_TOKEN = "cluster-report-token"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cluster tests run last: the cluster stays up until the session ends (a fixture in a folder without
    __init__.py is torn down with the session), and its pods must not run beside the other suites."""
    here = Path(__file__).resolve().parent
    mine = [i for i in items if i.path.is_relative_to(here)]
    items[:] = [i for i in items if not i.path.is_relative_to(here)] + mine


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the one-node Kubernetes of ci/cluster.sh (root)")


wait_until = poll  # the slow-condition poll of support.procs


def job_final(client: Any, job_id: str, deadline: float) -> dict[str, Any]:
    """The job once it ended (succeeded, failed or cancelled), polled until the monotonic ``deadline``."""

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(job_id)
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(ended, max(1.0, deadline - time.monotonic()), f"job {job_id} to end")
    return result


def _run(*args: str | Path, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
        )
    return res.stdout


@dataclass
class Cluster:
    kubeconfig: Path
    bin: Path
    timings: dict[str, float] = field(default_factory=dict)

    def kubectl(self, *args: str, timeout: float = 120, input_text: str | None = None) -> str:
        cmd = [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} exited {res.returncode}: {res.stderr[-3000:]}")
        return res.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def pods(self, ns: str, selector: str = "") -> list[dict[str, Any]]:
        extra = ["-l", selector] if selector else []
        items: list[dict[str, Any]] = self.json("-n", ns, "get", "pods", *extra)["items"]
        return items


def ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions") or []}
    return conds.get("Ready") == "True" and pod["metadata"].get("deletionTimestamp") is None


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    """The one-node cluster; its tests run last (``pytest_collection_modifyitems``)."""
    t0 = time.monotonic()
    out = _run(ROOT / "ci/cluster.sh", "up", timeout=3600)
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("#"))
    c = Cluster(kubeconfig=Path(env["KUBECONFIG"]), bin=Path(env["BIN"]))
    c.timings["cluster_up_s"] = time.monotonic() - t0
    try:
        yield c
    finally:
        if not os.environ.get("ASYA_KEEP_CLUSTER"):
            _run(ROOT / "ci/cluster.sh", "down", timeout=300)


@pytest.fixture(scope="package")
def cluster_images(cluster: Cluster) -> float:
    """Every image of images/ built and in the node's containerd; seconds it took."""
    t0 = time.monotonic()
    _run(ROOT / "ci/images.sh", "load", timeout=3600)
    return time.monotonic() - t0


def _helm_env(kubeconfig: Path) -> tuple[str, dict[str, str]]:
    out = _run(ROOT / "ci/chart-tools.sh", "env", timeout=3600)
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export "):
            for word in shlex.split(line[len("export ") :]):
                key, _, value = word.partition("=")
                env[key] = value.replace("$PATH", env.get("PATH", ""))
    env["KUBECONFIG"] = str(kubeconfig)
    return env["ASYA_HELM4"], env


def clear_namespace(cluster: Cluster, ns: str, helm: str, env: dict[str, str], timeout_s: float = 300) -> None:
    """Uninstall every Helm release in ``ns`` and delete it, waiting until it is gone (no-op when absent).

    AsyncActors carry the operator's finalizer, so they go first, while their namespace's operator
    still runs: the actor releases, then the remaining actors (the crew), then the umbrella release.
    An actor whose finalizer nobody removes (its operator was already gone) loses it by patch.
    """
    if not cluster.json("get", "namespaces", "--field-selector", f"metadata.name={ns}")["items"]:
        return
    # helm 4 lists releases in every status (failed and pending ones too) by default
    releases = json.loads(_run(helm, "list", "-n", ns, "-o", "json", env=env) or "[]")
    umbrella = [r["name"] for r in releases if r["chart"].rsplit("-", 1)[0] == "asya"]

    def uninstall(names: list[str]) -> None:
        for name in names:
            _run(helm, "uninstall", name, "-n", ns, "--wait", "--timeout", f"{int(timeout_s)}s", env=env,
                 timeout=timeout_s + 60)  # fmt: skip

    uninstall([r["name"] for r in releases if r["name"] not in umbrella])
    try:
        cluster.kubectl("-n", ns, "delete", "asyncactors", "--all", "--timeout=120s", timeout=180)
    except RuntimeError:
        for actor in cluster.json("-n", ns, "get", "asyncactors")["items"]:
            cluster.kubectl("-n", ns, "patch", "asyncactor", actor["metadata"]["name"], "--type=merge",
                            "-p", '{"metadata":{"finalizers":null}}')  # fmt: skip
    uninstall(umbrella)
    cluster.kubectl("delete", "namespace", ns, f"--timeout={int(timeout_s)}s", timeout=timeout_s + 60)


def asya_values(ns: str) -> dict[str, Any]:
    """Umbrella values for Asya's own images (ci/images.sh: localhost/asya-<name>:<version>) and tokens.

    Two umbrella installs share the cluster (test_cluster_evaluation's in asya-eval): each operator
    reconciles only its own namespace's AsyncActors.
    """
    return {
        "operator": {
            "watchNamespaces": [ns],
            "image": {"repository": "asya-operator"},
            "sidecar": {"image": {"repository": "asya-sidecar"}},
            "crew": {"image": {"repository": "asya-crew"}},
        },
        "crew": {"image": {"repository": "asya-crew"}},
        "gateway": {
            "image": {"repository": "asya-gateway"},
            "auth": {"clientTokens": [CLIENT_TOKEN], "reportToken": REPORT_TOKEN},
        },
    }


@dataclass
class Install:
    cluster: Cluster
    ns: str
    gateway_url: str
    s3: S3Server
    bucket: str
    forwarded: dict[str, int]


@pytest.fixture(scope="package")
def cluster_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A RabbitMQ of the cluster's own: the session broker's crew queues belong to the other suites' crews."""
    directory = tmp_path_factory.mktemp("cluster-rabbitmq")
    try:
        env = services.run_script(RABBITMQ_SCRIPT, "start", directory, timeout_s=180)
        yield RabbitMQServer(url=env["AMQP_URL"], dir=directory)
    finally:
        subprocess.run([str(RABBITMQ_SCRIPT), "stop", str(directory)], check=False, timeout=120, capture_output=True)


@pytest.fixture(scope="package")
def install(
    cluster: Cluster,
    cluster_images: float,
    cluster_broker: RabbitMQServer,
    s3_server: S3Server,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    """``helm install`` of charts/asya (+ the example pipeline) in a restricted namespace; all pods Ready."""
    from urllib.parse import urlsplit

    ports = {
        "amqp": urlsplit(cluster_broker.url).port or 5672,
        "s3": urlsplit(s3_server.url).port or 80,
        "pg": urlsplit(postgres_server.dsn).port or 5432,
    }
    with forwarders(BRIDGE_IP, ports) as fwd:
        work = tmp_path_factory.mktemp("cluster-install")
        helm, env = _helm_env(cluster.kubeconfig)
        charts = Path(_run(ROOT / "ci/charts.sh", "offline", work / "charts", env=env).splitlines()[-1])
        amqp = urlsplit(cluster_broker.url)
        dsn = urlsplit(postgres_server.fresh_database())
        values = {
            "global": {
                "imageRegistry": "localhost",
                "externalRabbitmq": {
                    "enabled": True,
                    "url": f"amqp://{amqp.username}:{amqp.password}@{BRIDGE_IP}:{fwd['amqp']}/",
                },
                "externalS3": {
                    "enabled": True,
                    "accessKeyId": s3_server.access_key_id,
                    "secretAccessKey": s3_server.secret_access_key,
                },
                "s3": {
                    "endpoint": f"http://{BRIDGE_IP}:{fwd['s3']}",
                    "bucket": "asya-results",
                    "region": s3_server.region,
                },
                "externalDatabase": {"enabled": True},
            },
            **asya_values(NS),
        }
        (work / "values.json").write_text(json.dumps(values))
        clear_namespace(cluster, NS, helm, env)  # what an ASYA_KEEP_CLUSTER=1 session left
        cluster.kubectl("create", "namespace", NS)
        cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted",
                        "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip
        db_url = dsn._replace(netloc=f"{dsn.username}:{dsn.password}@{BRIDGE_IP}:{fwd['pg']}").geturl()
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "asya-postgresql", "namespace": NS},
                  "data": {"url": base64.b64encode(db_url.encode()).decode()}}  # fmt: skip
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(secret))
        t0 = time.monotonic()
        common = ["--namespace", NS, "--server-side=true", "--wait", "--timeout", "300s"]
        _run(helm, "install", "asya", charts / "asya", "-f", work / "values.json", *common, env=env)
        _run(helm, "install", "text", charts / "asya-actor", "-f", ROOT / "examples/01-text-pipeline/helm-values.yaml",
             *common, env=env)  # fmt: skip
        actors = {"normalize", "chunk", "classify", "happy-end", "error-end"}

        def actors_ready() -> bool:
            items = cluster.json("-n", NS, "get", "asyncactors")["items"]
            phases = {a["metadata"]["name"]: (a.get("status") or {}).get("status") for a in items}
            return set(phases) >= actors and all(p == "Ready" for p in phases.values())

        wait_until(actors_ready, 180, "every AsyncActor Ready")
        cluster.timings["install_s"] = time.monotonic() - t0
        svc = cluster.json("-n", NS, "get", "service", "asya-gateway")
        url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        try:
            yield Install(cluster, NS, url, s3_server, "asya-results", fwd)
        finally:
            if not os.environ.get("ASYA_KEEP_CLUSTER"):
                cluster.kubectl("delete", "namespace", NS, "--wait=false", "--ignore-not-found")
