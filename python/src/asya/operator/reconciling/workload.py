"""Spec -> desired Deployment/StatefulSet and runtime ConfigMap (pure functions).

The user's pod template is deep-copied and completed: the sidecar container is added,
the runtime container gets the runtime file (from a ConfigMap) as its command, both
share an emptyDir for the Unix socket, every container gets a restricted security
context (the user may loosen the runtime's explicitly), and transport credentials only
ever appear as ``secretKeyRef``. Nothing here talks to the API: handlers apply the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from asya.operator import config as configs
from asya.operator.reconciling import specs, status

SOCKET_DIR = "/var/run/asya"
RUNTIME_DIR = "/opt/asya"
RUNTIME_FILE = "asya_runtime.py"
SIDECAR_PORT = 8080
SOCKET_VOLUME = "asya-socket"
RUNTIME_VOLUME = "asya-runtime"
TMP_VOLUME = "asya-tmp"
ACTOR_LABEL = "asya.sh/actor"
MANAGED_BY = "asya-operator"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

Manifest = dict[str, Any]

RESTRICTED_CONTAINER: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def labels(actor: specs.ActorSpec) -> dict[str, str]:
    """Labels on every child of ``actor``."""
    return {
        "app.kubernetes.io/name": actor.name,
        "app.kubernetes.io/component": "actor",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        ACTOR_LABEL: actor.name,
    }


def owner_reference(actor: specs.ActorSpec) -> dict[str, Any]:
    """ownerReference making ``actor`` the garbage-collection owner of a child."""
    return {
        "apiVersion": "asya.sh/v1alpha1",
        "kind": "AsyncActor",
        "name": actor.name,
        "uid": actor.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(actor: specs.ActorSpec, name: str) -> dict[str, Any]:
    """metadata for a child object named ``name``."""
    return {
        "name": name,
        "namespace": actor.namespace,
        "labels": labels(actor),
        "ownerReferences": [owner_reference(actor)],
    }


def runtime_configmap_name(actor: specs.ActorSpec) -> str:
    """Name of the ConfigMap carrying the runtime file."""
    return f"{actor.name}-asya-runtime"


def render_runtime_configmap(actor: specs.ActorSpec, runtime_source: str) -> Manifest:
    """ConfigMap holding the stdlib-only runtime as ``asya_runtime.py``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(actor, runtime_configmap_name(actor)),
        "data": {RUNTIME_FILE: runtime_source},
    }


def transport_env(transport: configs.TransportConfig) -> list[dict[str, Any]]:
    """Sidecar env describing the transport; secrets only as secretKeyRef."""
    env: list[dict[str, Any]] = [{"name": "ASYA_TRANSPORT", "value": transport.type}]
    if transport.url_secret is not None:
        ref = {"name": transport.url_secret.name, "key": transport.url_secret.key}
        env.append({"name": "ASYA_TRANSPORT_URL", "valueFrom": {"secretKeyRef": ref}})
    elif transport.url:
        env.append({"name": "ASYA_TRANSPORT_URL", "value": transport.url})
    if transport.type == "sqs":
        env.append({"name": "AWS_REGION", "value": transport.region})
        for var, secret in (
            ("AWS_ACCESS_KEY_ID", transport.access_key_secret),
            ("AWS_SECRET_ACCESS_KEY", transport.secret_key_secret),
        ):
            if secret is not None:
                ref = {"name": secret.name, "key": secret.key}
                env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
    for key, value in sorted(transport.options.items()):
        env.append({"name": f"ASYA_TRANSPORT_OPT_{key.upper()}", "value": value})
    return env


def _merge_env(*layers: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Merge env lists by name; later layers win, first-seen order is kept."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for entry in layer:
            merged[str(entry["name"])] = dict(entry)
    return list(merged.values())


def contract_env(
    actor: specs.ActorSpec, transport: configs.TransportConfig, cfg: configs.OperatorConfig
) -> list[Mapping[str, Any]]:
    """The env every Asya process of this actor gets (sidecar, or crew for end actors)."""
    env: list[Mapping[str, Any]] = [
        {"name": "ASYA_ACTOR", "value": actor.name},
        *transport_env(transport),
        {"name": "ASYA_PROCESSING_TIMEOUT_S", "value": str(actor.processing_timeout_s)},
        # a lease shorter than the processing time would hand the envelope to a second consumer
        {"name": "ASYA_VISIBILITY_TIMEOUT_S", "value": str(actor.processing_timeout_s + 30)},
        {"name": "ASYA_PREFETCH", "value": str(actor.prefetch)},
        # leave the pod a few seconds between the process giving up and SIGKILL
        {"name": "ASYA_GRACEFUL_SHUTDOWN_S", "value": str(max(actor.graceful_shutdown_s - 5, 0))},
        {"name": "ASYA_RETRY_MAX_ATTEMPTS", "value": str(actor.max_attempts)},
        {"name": "ASYA_RETRY_BACKOFF_BASE_S", "value": f"{actor.backoff.initial_s:g}"},
        {"name": "ASYA_RETRY_BACKOFF_MAX_S", "value": f"{actor.backoff.max_s:g}"},
    ]
    if cfg.gateway_url:
        env.append({"name": "ASYA_GATEWAY_URL", "value": cfg.gateway_url})
        if cfg.gateway_token_secret is not None:
            ref = {"name": cfg.gateway_token_secret.name, "key": cfg.gateway_token_secret.key}
            env.append({"name": "ASYA_GATEWAY_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    return env


def sidecar_container(
    actor: specs.ActorSpec, transport: configs.TransportConfig, cfg: configs.OperatorConfig
) -> Manifest:
    """The injected sidecar: contract env, port 8080, probes, restricted context."""
    contract = [
        *contract_env(actor, transport, cfg),
        {"name": "ASYA_SOCKET_DIR", "value": SOCKET_DIR},
        {"name": "ASYA_HTTP_PORT", "value": str(SIDECAR_PORT)},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    return {
        "name": specs.SIDECAR_CONTAINER,
        "image": actor.sidecar_image or cfg.sidecar.image,
        "imagePullPolicy": actor.sidecar_pull_policy or cfg.sidecar.pull_policy,
        "command": ["python", "-m", "asya.sidecar"],
        "ports": [{"name": "http", "containerPort": SIDECAR_PORT, "protocol": "TCP"}],
        "env": _merge_env(list(cfg.sidecar.env), list(actor.sidecar_env), list(contract)),
        "resources": copy.deepcopy(dict(actor.sidecar_resources or cfg.sidecar.resources)),
        "livenessProbe": probe,
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 60},
        "securityContext": copy.deepcopy(dict(RESTRICTED_CONTAINER)),
        "volumeMounts": [
            {"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR},
            {"name": TMP_VOLUME, "mountPath": "/tmp", "subPath": "sidecar"},
        ],
    }


def _complete_runtime(container: dict[str, Any], actor: specs.ActorSpec) -> None:
    """Point the user's runtime container at the injected runtime file."""
    container["command"] = [actor.python_executable, f"{RUNTIME_DIR}/{RUNTIME_FILE}"]
    container.pop("args", None)
    container["env"] = _merge_env(
        [{"name": "ASYA_RUNTIME_DRAIN_S", "value": str(max(actor.graceful_shutdown_s - 5, 0))}],
        container.get("env") or [],  # the user may tune the runtime, but not move its socket
        [{"name": "ASYA_SOCKET_DIR", "value": SOCKET_DIR}],
    )
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") not in _OUR_VOLUMES]
    container["volumeMounts"] = [
        *mounts,
        {"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR},
        {"name": RUNTIME_VOLUME, "mountPath": RUNTIME_DIR, "readOnly": True},
        {"name": TMP_VOLUME, "mountPath": "/tmp", "subPath": "runtime"},
    ]
    context = dict(RESTRICTED_CONTAINER)
    context.update(container.get("securityContext") or {})  # an explicit user choice wins
    container["securityContext"] = context


def _complete_crew(
    container: dict[str, Any], actor: specs.ActorSpec, transport: configs.TransportConfig, cfg: configs.OperatorConfig
) -> None:
    """End actors: the crew process consumes the queue itself, so it gets the contract env."""
    if actor.crew_in_runtime:  # 0.1.x shape: the handler's image and command give way to the crew
        container["image"] = cfg.crew_image or cfg.sidecar.image
        container["command"] = ["python", "-m", "asya.crew", actor.name]
        container.pop("args", None)
    container.setdefault("command", ["python", "-m", "asya.crew", actor.name])
    container["env"] = _merge_env(
        list(cfg.sidecar.env), container.get("env") or [], list(contract_env(actor, transport, cfg))
    )
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") not in _OUR_VOLUMES]
    container["volumeMounts"] = [*mounts, {"name": TMP_VOLUME, "mountPath": "/tmp"}]
    context = dict(RESTRICTED_CONTAINER)
    context.update(container.get("securityContext") or {})
    container["securityContext"] = context


_OUR_VOLUMES = (SOCKET_VOLUME, RUNTIME_VOLUME, TMP_VOLUME)


def pod_template(actor: specs.ActorSpec, transport: configs.TransportConfig, cfg: configs.OperatorConfig) -> Manifest:
    """The user's template with everything Asya needs injected."""
    template = copy.deepcopy(dict(actor.template))
    given = template.get("metadata") or {}
    # 0.1.x manifests carry e.g. template.metadata.name; a pod template renders only these two
    meta: dict[str, Any] = {"labels": {**(given.get("labels") or {}), **labels(actor)}}
    if given.get("annotations"):
        meta["annotations"] = dict(given["annotations"])
    template["metadata"] = meta
    pod = template["spec"]
    for volume in pod.get("volumes") or []:
        if volume.get("name") in _OUR_VOLUMES:
            raise specs.SpecError(
                "spec.workload.template.spec.volumes",
                f"the volume name {volume['name']!r} is reserved for the operator; rename it",
            )
    containers = pod["containers"]
    if actor.is_end:
        crew_name = specs.RUNTIME_CONTAINER if actor.crew_in_runtime else specs.CREW_CONTAINER
        for container in containers:
            if container.get("name") == crew_name:
                _complete_crew(container, actor, transport, cfg)
        pod["volumes"] = [*(pod.get("volumes") or []), {"name": TMP_VOLUME, "emptyDir": {}}]
    else:
        for container in containers:
            if container.get("name") == specs.RUNTIME_CONTAINER:
                _complete_runtime(container, actor)
        containers.append(sidecar_container(actor, transport, cfg))
        pod["volumes"] = [
            *(pod.get("volumes") or []),
            {"name": SOCKET_VOLUME, "emptyDir": {}},
            {"name": TMP_VOLUME, "emptyDir": {}},
            {
                "name": RUNTIME_VOLUME,
                "configMap": {"name": runtime_configmap_name(actor), "defaultMode": 0o444},
            },
        ]
    pod["terminationGracePeriodSeconds"] = actor.graceful_shutdown_s
    security = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    security.update(pod.get("securityContext") or {})
    pod["securityContext"] = security
    pod.setdefault("automountServiceAccountToken", False)
    return template


def render_workload(
    actor: specs.ActorSpec, transport: configs.TransportConfig, cfg: configs.OperatorConfig
) -> Manifest:
    """The Deployment or StatefulSet running ``actor``.

    With scaling enabled ``replicas`` is left out, so KEDA's HPA owns it and a
    re-apply never fights the autoscaler; ``creation_manifest`` adds the starting count.
    """
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {ACTOR_LABEL: actor.name}},
        "template": pod_template(actor, transport, cfg),
    }
    if not actor.scaling.enabled:
        spec["replicas"] = actor.replicas
    if actor.workload_type == "StatefulSet":
        spec["serviceName"] = actor.name
        spec["podManagementPolicy"] = "Parallel"
    else:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    meta = child_metadata(actor, actor.name)
    if actor.notices:
        meta["annotations"] = {status.NOTICES_ANNOTATION: "\n".join(actor.notices)}
    return {"apiVersion": "apps/v1", "kind": actor.workload_type, "metadata": meta, "spec": spec}


def creation_manifest(actor: specs.ActorSpec, manifest: Manifest) -> Manifest:
    """What to apply when the workload does not exist yet.

    With scaling on the apiserver would default a missing ``replicas`` to 1 and start a
    pod even for ``minReplicas: 0``, so the first write carries ``minReplicas``. The
    fingerprint is left as rendered: the count is a starting point, not something the
    operator keeps enforcing (``replicas_handover`` makes later applies leave it alone).
    """
    if not actor.scaling.enabled or manifest.get("kind") not in WORKLOAD_KINDS:
        return manifest
    created = copy.deepcopy(manifest)
    created["spec"]["replicas"] = actor.scaling.min_replicas
    return created


def replicas_handover(workload: Mapping[str, Any]) -> Manifest:
    """Partial apply through which a second field manager shares the current ``replicas``.

    Server-side apply deletes a field once no manager owns it any more: without a second
    owner, the operator's next apply (which leaves ``replicas`` out while scaling is on)
    would reset the count to the default of 1.
    """
    meta = workload["metadata"]
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": workload["spec"]["replicas"]},
    }
