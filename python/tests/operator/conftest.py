"""Fixtures for the operator tests: a real control plane and the operator as a process.

Session scope: etcd + kube-apiserver (+ controller-manager) from ``controlplane``, the
AsyncActor CRD and KEDA's CRDs (fetched by ``ci/keda-crds.sh`` from the KEDA Go module),
the operator's ServiceAccount bound to the shipped ClusterRole (``crds/rbac/operator.yaml``),
and one operator process watching namespaces ``asya-t-*``. Tests that must kill or restart
an operator start their own with ``start_operator`` on a namespace outside that glob.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import controlplane
import pytest
import yaml
from actorfactory import OPERATOR_NS, OPERATOR_SA, OPERATOR_USER, OperatorProcess, new_namespace

ROOT = controlplane.ROOT
CRD = ROOT / "crds" / "asyncactor.yaml"
RBAC = ROOT / "crds" / "rbac" / "operator.yaml"
RBAC_USAGE_MODULE = "test_zz_rbac_matches_usage.py"


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: `-m "not kube"` never builds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build the control-plane binaries before any test runs (outside per-test timeouts).

    A warm machine returns at once; a fresh one spends 10-25 min in ``ci/build-kube.sh``.
    Also moves the RBAC-versus-usage comparison to the very end: it judges the audit log
    of every operator request the session made.
    """
    last = [item for item in items if item.path.name == RBAC_USAGE_MODULE]
    if last:
        items[:] = [item for item in items if item.path.name != RBAC_USAGE_MODULE] + last
    if any(item.get_closest_marker("kube") for item in items):
        controlplane.tool_dir(build=True)
        controlplane.keda_crd_files()


@pytest.fixture(scope="session")
def kube() -> Iterator[controlplane.ControlPlane]:
    """A running control plane with the CRDs and the operator's RBAC installed."""
    cp = controlplane.ControlPlane(audited_users=[OPERATOR_USER])  # every request: test_zz_rbac_matches_usage.py
    try:
        cp.start()
        cp.install_asya()
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def operator_kubeconfig(kube: controlplane.ControlPlane) -> Path:
    """Kubeconfig of the operator's ServiceAccount, bound only by the shipped ClusterRole."""
    role = yaml.safe_load(RBAC.read_text())["metadata"]["name"]
    return kube.service_account_kubeconfig(OPERATOR_NS, OPERATOR_SA, role)


@pytest.fixture(scope="session")
def local_queues(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the ``local`` transport shared by the operator and the tests."""
    return tmp_path_factory.mktemp("local-queues")


@pytest.fixture(scope="session")
def operator_config(
    tmp_path_factory: pytest.TempPathFactory, local_queues: Path, rabbitmq_server: Any
) -> tuple[Path, dict[str, str]]:
    """Operator configuration file (transports ``local`` and ``rabbit``) and the env it needs."""
    cfg = {
        "transports": {
            "local": {"type": "local", "url": str(local_queues)},
            "deadmq": {"type": "rabbitmq", "url": f"amqp://127.0.0.1:{controlplane.free_port()}/"},
            "rabbit": {
                "type": "rabbitmq",
                "urlEnv": "ASYA_TEST_RABBIT_URL",
                "secretRef": {"name": "asya-rabbitmq", "key": "url"},
            },
        },
        "sidecar": {"image": "example.org/asya-sidecar:test"},
        "gatewayUrl": "http://asya-gateway:8080",
    }
    path = tmp_path_factory.mktemp("operator-config") / "operator.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, {"ASYA_TEST_RABBIT_URL": rabbitmq_server.url}


@pytest.fixture(scope="session")
def start_operator(
    kube: controlplane.ControlPlane,
    operator_kubeconfig: Path,
    operator_config: tuple[Path, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Factory: start an operator on the given namespaces (globs) with extra env."""
    started: list[OperatorProcess] = []
    logs = tmp_path_factory.mktemp("operator-logs")

    def start(namespaces: str, transports: dict[str, Any] | None = None, **env: str) -> OperatorProcess:
        path, cfg_env = operator_config
        if transports:  # a private configuration with extra transports
            cfg = yaml.safe_load(path.read_text())
            cfg["transports"].update(transports)
            path = logs / f"operator-{len(started)}.yaml"
            path.write_text(yaml.safe_dump(cfg))
        full = {
            **os.environ,
            **cfg_env,
            "KUBECONFIG": str(operator_kubeconfig),
            "ASYA_OPERATOR_CONFIG": str(path),
            "ASYA_OPERATOR_NAMESPACES": namespaces,
            "ASYA_OPERATOR_STATUS_INTERVAL_S": "1",
            "ASYA_OPERATOR_QUEUE_CHECK_S": "2",
            "ASYA_OPERATOR_RETRY_DELAY_S": "1",
            **env,
        }
        log = logs / f"operator-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "asya.operator"], env=full, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        op = OperatorProcess(proc, log)
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture(scope="session")
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The shared operator, watching namespaces ``asya-t-*``."""
    return start_operator("asya-t-*")


@pytest.fixture(scope="session")
def api(kube: controlplane.ControlPlane) -> Any:
    """An admin ``kubernetes.client.ApiClient``."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kube.admin_kubeconfig))


@pytest.fixture
def namespace(kube: controlplane.ControlPlane, operator: OperatorProcess) -> str:
    """A fresh namespace watched by the shared operator."""
    return new_namespace(kube, "asya-t")
