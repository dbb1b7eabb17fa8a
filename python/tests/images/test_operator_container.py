"""The operator image against the test apiserver: liveness answers and an AsyncActor is reconciled.

Run like the chart's Deployment runs it: the configuration file and the ServiceAccount's
kubeconfig mounted read-only, /tmp an emptyDir, the broker URL from env, leader
election on (the Lease in the test's own namespace, so no other operator of the
session competes for it).
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import actorfactory as af
import controlplane
import podrun
import pytest
import yaml
from fixtures.rabbitmq import queue_exists

pytestmark = [pytest.mark.images, pytest.mark.kube, pytest.mark.rabbitmq]


def portable_kubeconfig(src: Path, dst: Path) -> Path:
    """``src`` with its CA inlined, so the one mounted file is all the container needs."""
    cfg = yaml.safe_load(src.read_text())
    for cluster in cfg["clusters"]:
        ca = Path(cluster["cluster"].pop("certificate-authority"))
        cluster["cluster"]["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    dst.write_text(yaml.safe_dump(cfg))
    dst.chmod(0o444)
    return dst


def test_operator_container_is_live_and_reconciles_an_actor(
    images: dict[str, str],
    kube: controlplane.ControlPlane,
    operator_kubeconfig: Path,
    rabbitmq_server: Any,
    pod_dir: Path,
    started: list[Any],
) -> None:
    from kubernetes import client
    from kubernetes import config as kconfig

    ns = af.new_namespace(kube, "asya-img")  # also the Secret the sidecars would read
    etc = pod_dir / "etc-asya"
    etc.mkdir()
    (etc / "operator.yaml").write_text(
        yaml.safe_dump(
            {
                "transports": {
                    "rabbit": {
                        "type": "rabbitmq",
                        "urlEnv": "ASYA_TRANSPORT_URL_RABBIT",
                        "secretRef": {"name": "asya-rabbitmq", "key": "url"},
                    }
                },
                "sidecar": {"image": images["sidecar"]},
            }
        )
    )
    kubedir = pod_dir / "kube"
    kubedir.mkdir()
    portable_kubeconfig(operator_kubeconfig, kubedir / "config")
    for path in (etc, kubedir):
        path.chmod(0o755)
    tmp = pod_dir / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    port = controlplane.free_port()
    container = podrun.run(
        images["operator"],
        f"--volume={etc}:/etc/asya:ro",
        f"--volume={kubedir}:/etc/asya-kube:ro",
        f"--volume={tmp}:/tmp:rw",
        "--env=KUBECONFIG=/etc/asya-kube/config",
        "--env=ASYA_OPERATOR_CONFIG=/etc/asya/operator.yaml",
        f"--env=ASYA_OPERATOR_NAMESPACES={ns}",
        f"--env=ASYA_OPERATOR_LIVENESS=http://0.0.0.0:{port}/healthz",
        "--env=ASYA_OPERATOR_STATUS_INTERVAL_S=1",
        "--env=ASYA_OPERATOR_LEADER_ELECTION=true",
        f"--env=ASYA_OPERATOR_LEASE_NAMESPACE={ns}",
        f"--env=POD_NAMESPACE={ns}",
        "--env=POD_NAME=asya-operator-img",
        f"--env=ASYA_TRANSPORT_URL_RABBIT={rabbitmq_server.url}",
    )
    started.append(container)
    liveness = f"http://127.0.0.1:{port}/healthz"
    podrun.wait_for(lambda: podrun.http_status(liveness) == 200, 90, liveness, container.logs)

    name = f"img-{uuid.uuid4().hex[:8]}"
    api = kconfig.new_client_from_config(config_file=str(kube.admin_kubeconfig))  # type: ignore[no-untyped-call]
    af.create(api, ns, af.actor_body(name, transport="rabbit"))
    apps = client.AppsV1Api(api)
    dep = podrun.wait_for(
        lambda: apps.read_namespaced_deployment(name, ns), 90, f"Deployment {ns}/{name}", container.logs
    )
    sidecar = next(c for c in dep.spec.template.spec.containers if c.name == "asya-sidecar")
    assert sidecar.image == images["sidecar"]
    podrun.wait_for(lambda: queue_exists(rabbitmq_server.url, f"asya-{name}"), 60, "the actor's queue", container.logs)
    podrun.wait_for(
        lambda: af.condition(af.get(api, ns, name), "QueueReady").get("status") == "True",
        60,
        "status condition QueueReady=True",
        container.logs,
    )
    assert container.running()
    logs = container.logs()
    # kopf's retried API requests (a fresh apiserver answers 429 for a moment) are not failures
    assert "Traceback" not in logs, logs
    assert "Handler 'reconcile' succeeded" in logs, logs
    assert not re.search(r"Handler '[^']+' failed", logs), logs
    af.delete(api, ns, name)
