"""Fixtures for the operator tests: a real control plane and the operator as a process.

The control plane itself (``kube``, ``operator_kubeconfig``) is the session fixture of
``tests/fixtures/kube.py``, shared with the chart and image tests. Here: the operator's
configuration and one operator process watching namespaces ``asya-t-*``. Tests that must kill or restart
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
from actorfactory import OperatorProcess, new_namespace

ROOT = controlplane.ROOT
CRD = ROOT / "crds" / "asyncactor.yaml"


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
