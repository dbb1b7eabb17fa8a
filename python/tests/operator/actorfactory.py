"""Helpers the operator tests (and the benchmark) share: actor bodies, API shortcuts, waiting."""

from __future__ import annotations

import copy
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import controlplane

GROUP, VERSION, PLURAL = "asya.sh", "v1alpha1", "asyncactors"
OPERATOR_NS = "asya-system"
OPERATOR_SA = "asya-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"


def wait_for(check: Callable[[], Any], timeout_s: float = 30, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the object may not exist yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


class OperatorProcess:
    """``python -m asya.operator`` as a child process."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def new_namespace(kube: controlplane.ControlPlane, prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", ns)
    # sidecars and KEDA read the broker URL from this Secret (the operator never does)
    kube.kubectl("create", "secret", "generic", "asya-rabbitmq", "-n", ns, "--from-literal=url=amqp://x")
    return ns


def actor_body(name: str, transport: str = "local", **spec: Any) -> dict[str, Any]:
    """A minimal valid AsyncActor; ``spec`` keys override."""
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AsyncActor",
        "metadata": {"name": name},
        "spec": {
            "transport": transport,
            "workload": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "asya-runtime",
                                "image": "example.org/handler:1",
                                "env": [{"name": "ASYA_HANDLER", "value": "handlers.echo"}],
                            }
                        ]
                    }
                }
            },
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def create(api: Any, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client

    return dict(client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body))


def get(api: Any, ns: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    return dict(client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))


def patch(api: Any, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client

    return dict(client.CustomObjectsApi(api).patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, body))


def delete(api: Any, ns: str, name: str) -> None:
    from kubernetes import client

    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}
