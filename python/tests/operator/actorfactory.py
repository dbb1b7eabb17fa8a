"""Helpers the operator tests share: AsyncActor bodies and typed access to the API."""

from __future__ import annotations

import copy
from typing import Any

GROUP, VERSION, PLURAL = "asya.sh", "v1alpha1", "asyncactors"


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
