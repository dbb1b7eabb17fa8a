"""What the operator does differently from what an AsyncActor's spec says (pure functions).

Manifests written for Asya 0.1.x apply unchanged, but a few of their settings cannot be
honoured as written: the runtime container's own ``command``/``args`` are replaced by the
injected runtime, some 0.1.x runtime env is not read by this runtime, template metadata
other than labels/annotations is not rendered, and end actors declared with an
``asya-runtime`` container run the crew instead of their handler. Each such case becomes
one sentence here; ``status`` reports them in the ``SpecAsWritten`` condition, so nothing
is dropped without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RUNTIME_CONTAINER = "asya-runtime"
CREW_CONTAINER = "asya-crew"

UNREAD_RUNTIME_ENV: Mapping[str, str] = {
    "ASYA_ENABLE_VALIDATION": "envelopes are always validated (an invalid one goes to error-end)",
    "ASYA_INCLUDE_ROUTE_INFO": "payload-mode handlers get the payload only; use ASYA_HANDLER_MODE=envelope for the route",
    "ASYA_SOCKET_PATH": "the operator places the socket in /var/run/asya",
    "ASYA_SOCKET_CHMOD": "the socket lives in a pod-private emptyDir",
    "ASYA_CHUNK_SIZE": "the runtime reads whole frames",
}
"""0.1.x runtime settings this runtime does not read, and what happens instead."""


def _container(template: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    spec = template.get("spec") or {}
    for c in spec.get("containers") or []:
        if isinstance(c, Mapping) and c.get("name") == name:
            return c
    return None


def _env_value(container: Mapping[str, Any], name: str) -> str | None:
    for e in container.get("env") or []:
        if isinstance(e, Mapping) and e.get("name") == name:
            return str(e.get("value", "<valueFrom>"))
    return None


def end_actor_runs_crew_in_runtime(template: Mapping[str, Any]) -> bool:
    """An end actor in the 0.1.x shape: an ``asya-runtime`` container and no ``asya-crew``."""
    return _container(template, CREW_CONTAINER) is None and _container(template, RUNTIME_CONTAINER) is not None


def notices(
    name: str, template: Mapping[str, Any], end_actor: bool, python: str, spec: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """One sentence per spec setting the operator does not use as written."""
    out: list[str] = []
    socket = (spec or {}).get("socket")
    if socket:
        keys = ", ".join(sorted(socket)) if isinstance(socket, Mapping) else str(socket)
        out.append(f"spec.socket {keys}: ignored (the socket always lives in the pod-private /var/run/asya)")
    extra_meta = sorted(k for k in (template.get("metadata") or {}) if k not in ("labels", "annotations"))
    if extra_meta:
        keys = ", ".join(extra_meta)
        out.append(f"spec.workload.template.metadata {keys}: ignored (only labels and annotations are rendered)")
    runtime = _container(template, RUNTIME_CONTAINER)
    if runtime is None:
        return tuple(out)
    where = "spec.workload.template.spec.containers[asya-runtime]"
    if end_actor and _container(template, CREW_CONTAINER) is None:
        handler = _env_value(runtime, "ASYA_HANDLER")
        out.append(
            f"{where}: {name} runs the Asya crew (python -m asya.crew {name}) from the operator's crew image"
            + (f"; its handler {handler} and image are not used" if handler else "; its image is not used")
        )
        return tuple(out)
    for key in ("command", "args"):
        if runtime.get(key):
            out.append(
                f"{where}.{key} {list(runtime[key])!r}: replaced, the runtime starts as "
                f"[{python}, /opt/asya/asya_runtime.py] (choose the interpreter with spec.workload.pythonExecutable)"
            )
    for env, instead in UNREAD_RUNTIME_ENV.items():
        if _env_value(runtime, env) is not None:
            out.append(f"{where}.env {env}: not read by this runtime ({instead})")
    return tuple(out)
