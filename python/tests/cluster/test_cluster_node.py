"""Issue 11, the node itself: a kubelet on containerd + runc runs pods, CoreDNS and kube-proxy serve Services."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, Cluster, ready, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

NS = "asya-node-check"
# a restricted-compliant pod on the runtime image: serves HTTP, and resolves a Service name
# (kube-proxy and CoreDNS program a new Service a moment after its pod is Ready: retried for 30 s)
PROBE = """
import socket, sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        ip = socket.gethostbyname(sys.argv[1])
        body = urllib.request.urlopen(f"http://{sys.argv[1]}:8080/", timeout=5).read()
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            raise SystemExit(f"no answer from {sys.argv[1]} within 30 s: {exc!r}")
        time.sleep(0.5)
print(ip, len(body))
"""


def _pod(name: str, args: list[str], labels: dict[str, str] | None = None) -> dict[str, object]:
    version = next(
        line.split('"')[1] for line in (ROOT / "python/pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": f"localhost/asya-runtime:{version}",
                    "imagePullPolicy": "Never",
                    "command": ["python3", *args],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def test_node_ready_and_a_service_resolves_and_answers_from_a_pod(cluster: Cluster, cluster_images: float) -> None:
    node = cluster.json("get", "node", "asya-node")
    conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conds["Ready"] == "True", conds
    cluster.kubectl("create", "namespace", NS)
    try:
        cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
        server = _pod("web", ["-m", "http.server", "8080", "--directory", "/"], {"app": "web"})
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(server))
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]}}  # fmt: skip
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(svc))
        wait_until(lambda: all(ready(p) for p in cluster.pods(NS, "app=web")) and cluster.pods(NS, "app=web"),
                   120, "the web pod Ready")  # fmt: skip
        cluster.kubectl(
            "apply", "-f", "-", input_text=json.dumps(_pod("probe", ["-c", PROBE, f"web.{NS}.svc.cluster.local"]))
        )

        def finished() -> str | None:
            phase = cluster.json("-n", NS, "get", "pod", "probe")["status"].get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_until(finished, 120, "the probe pod to finish")
        log = cluster.kubectl("-n", NS, "logs", "probe")
        assert phase == "Succeeded", log
        cluster_ip = cluster.json("-n", NS, "get", "service", "web")["spec"]["clusterIP"]
        assert log.split()[0] == cluster_ip, f"CoreDNS answered {log!r}, the Service is {cluster_ip}"
        assert int(log.split()[1]) > 0, "the Service answered with an empty body"
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false")
