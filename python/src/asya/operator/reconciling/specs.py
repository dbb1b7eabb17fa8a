"""The AsyncActor spec as typed values, parsed once from the custom resource body.

The API server already applied the CRD's defaults and most of its validation; this
module re-checks what the operator relies on (so a CRD installed without CEL support,
or an object written before a schema change, becomes a readable status error instead
of a crash) and turns the body into frozen dataclasses the renderers consume.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from asya.operator.reconciling import compat

RUNTIME_CONTAINER = "asya-runtime"
SIDECAR_CONTAINER = "asya-sidecar"
CREW_CONTAINER = "asya-crew"
END_ACTORS = ("happy-end", "error-end")
"""End actors run the crew process (``python -m asya.crew <name>``) and get no sidecar."""
HANDLER_ENV = "ASYA_HANDLER"
WORKLOAD_TYPES = ("Deployment", "StatefulSet")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class SpecError(ValueError):
    """The actor's spec cannot be reconciled; ``str()`` says what to change, ``field`` where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclasses.dataclass(frozen=True)
class ScalingSpec:
    """``spec.scaling``: KEDA autoscaling on queue depth."""

    enabled: bool = False
    """Create a ScaledObject; replicas are then owned by KEDA's HPA."""
    min_replicas: int = 0
    """Replicas when the queue is empty (0 = scale to zero)."""
    max_replicas: int = 10
    """Upper bound on replicas."""
    queue_length: int = 5
    """Target messages waiting per replica."""
    polling_interval: int = 10
    """Seconds between KEDA's queue checks."""
    cooldown_period: int = 60
    """Seconds of an empty queue before scaling to minReplicas (the guide's and 0.1.x's 60)."""
    advanced: AdvancedScaling | None = None
    """``scaling.advanced`` (0.1.x): KEDA scaling modifiers and restoreToOriginalReplicaCount."""
    behavior: Mapping[str, Any] | None = None
    """``scaling.behavior``: HPA behaviour; None = the operator configuration's."""


@dataclasses.dataclass(frozen=True)
class AdvancedScaling:
    """``spec.scaling.advanced``, as 0.1.x manifests write it (KEDA ``advanced``)."""

    formula: str = ""
    """KEDA scalingModifiers.formula over the trigger named ``queueLength``."""
    target: str = ""
    """scalingModifiers.target."""
    activation_target: str = ""
    """scalingModifiers.activationTarget."""
    metric_type: str = ""
    """scalingModifiers.metricType (AverageValue | Value)."""
    restore_to_original_replica_count: bool | None = None
    """advanced.restoreToOriginalReplicaCount; None = KEDA's default (false)."""


@dataclasses.dataclass(frozen=True)
class BackoffSpec:
    """``spec.retry.backoff``: exponential backoff between attempts, seconds."""

    initial_s: float = 1.0
    """Delay before the second attempt, seconds."""
    max_s: float = 300.0
    """Ceiling on any single delay, seconds."""


@dataclasses.dataclass(frozen=True)
class ActorSpec:
    """Everything the renderers need about one AsyncActor."""

    name: str
    """Actor name = metadata.name; names the queue ``asya-<name>`` and the workload."""
    namespace: str
    """Namespace of the actor and of all its children."""
    uid: str
    """metadata.uid, for the children's ownerReferences."""
    generation: int
    """metadata.generation, reported back as status.observedGeneration."""
    transport: str
    """Name of a transport declared in the operator configuration."""
    workload_type: str = "Deployment"
    """Deployment or StatefulSet."""
    template: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The user's pod template, untouched (renderers deep-copy it)."""
    replicas: int = 1
    """Fixed replicas when scaling is disabled."""
    scaling: ScalingSpec = ScalingSpec()
    """Autoscaling settings."""
    sidecar_image: str = ""
    """Sidecar image override; empty = operator default."""
    sidecar_pull_policy: str = ""
    """Sidecar imagePullPolicy override; empty = operator default."""
    sidecar_resources: Mapping[str, Any] | None = None
    """Sidecar resources override; None = operator default."""
    sidecar_env: tuple[Mapping[str, Any], ...] = ()
    """Extra sidecar env entries, over the operator defaults."""
    prefetch: int = 1
    """Messages processed concurrently per pod."""
    processing_timeout_s: int = 300
    """Seconds one envelope may take in the handler."""
    graceful_shutdown_s: int = 30
    """Pod terminationGracePeriodSeconds."""
    max_attempts: int = 3
    """Attempts per envelope before it is dead-lettered."""
    backoff: BackoffSpec = BackoffSpec()
    """Delays between attempts."""
    delete_queue: bool = False
    """True when ``queue.deletionPolicy`` is Delete."""
    python_executable: str = "python3"
    """``workload.pythonExecutable``: the interpreter the runtime file is started with."""
    crew_in_runtime: bool = False
    """End actor declared the 0.1.x way (an ``asya-runtime`` container): the crew runs in it."""
    notices: tuple[str, ...] = ()
    """Spec settings not used as written (``compat.notices``), reported in status."""

    @property
    def is_end(self) -> bool:
        """happy-end or error-end: a crew workload, not a handler behind a sidecar."""
        return self.name in END_ACTORS

    @property
    def queue(self) -> str:
        """The queue this actor consumes."""
        return f"asya-{self.name}"


def _int(obj: Mapping[str, Any], key: str, field: str, default: int, lo: int, hi: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(field, f"must be an integer from {lo} to {hi}, got {value!r}")
    return value


def _num(obj: Mapping[str, Any], key: str, field: str, default: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SpecError(field, f"must be a non-negative number, got {value!r}")
    return float(value)


def _section(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{key}", "must be an object")
    return value


def check_template(template: Any, end_actor: bool = False) -> Mapping[str, Any]:
    """Return ``template`` if it is a pod template the operator can inject into."""
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        raise SpecError("spec.workload.template", "must be a pod template with a 'spec'")
    containers = template["spec"].get("containers")
    if not isinstance(containers, list) or not containers:
        raise SpecError("spec.workload.template.spec.containers", "must list at least one container")
    names = [c.get("name") for c in containers if isinstance(c, Mapping)]
    if SIDECAR_CONTAINER in names:
        raise SpecError(
            "spec.workload.template.spec.containers",
            f'the name "{SIDECAR_CONTAINER}" is reserved for the injected sidecar; rename that container',
        )
    if end_actor:
        if CREW_CONTAINER not in names and RUNTIME_CONTAINER not in names:
            raise SpecError(
                "spec.workload.template.spec.containers",
                f'the end actors need a container named "{CREW_CONTAINER}" (the crew image) '
                f'or, as in 0.1.x, "{RUNTIME_CONTAINER}" (the crew runs in it)',
            )
        return template
    if RUNTIME_CONTAINER not in names:
        raise SpecError(
            "spec.workload.template.spec.containers",
            f'needs a container named "{RUNTIME_CONTAINER}" (the image with your handler)',
        )
    runtime = next(c for c in containers if isinstance(c, Mapping) and c.get("name") == RUNTIME_CONTAINER)
    env_names = {e.get("name") for e in runtime.get("env") or [] if isinstance(e, Mapping)}
    if HANDLER_ENV not in env_names:
        raise SpecError(
            "spec.workload.template.spec.containers[asya-runtime].env",
            f"needs {HANDLER_ENV} (module.function or module.Class.method of your handler)",
        )
    return template


def _workload_type(workload: Mapping[str, Any]) -> str:
    """``workload.type`` (ours) or ``workload.kind`` (0.1.x): one setting, two names."""
    wtype, kind = workload.get("type"), workload.get("kind")
    if wtype is not None and kind is not None and wtype != kind:
        raise SpecError(
            "spec.workload.kind",
            f"spec.workload.type ({wtype}) and spec.workload.kind ({kind}) name the same setting and disagree; "
            "set one of them",
        )
    chosen = wtype if wtype is not None else kind if kind is not None else "Deployment"
    if chosen not in WORKLOAD_TYPES:
        field = "spec.workload.type" if wtype is not None else "spec.workload.kind"
        raise SpecError(field, f"must be one of {', '.join(WORKLOAD_TYPES)}, got {chosen!r}")
    return str(chosen)


def _replicas(spec: Mapping[str, Any], workload: Mapping[str, Any]) -> int:
    """``spec.replicas`` (ours) or ``spec.workload.replicas`` (0.1.x), default 1."""
    ours = _int(spec, "replicas", "spec.replicas", 1, 0, 1000) if "replicas" in spec else None
    theirs = _int(workload, "replicas", "spec.workload.replicas", 1, 0, 1000) if "replicas" in workload else None
    if ours is not None and theirs is not None and ours != theirs:
        raise SpecError(
            "spec.workload.replicas",
            f"spec.replicas ({ours}) and spec.workload.replicas ({theirs}) name the same setting and disagree; "
            "set one of them",
        )
    return ours if ours is not None else theirs if theirs is not None else 1


def _advanced(scaling: Mapping[str, Any]) -> AdvancedScaling | None:
    raw = scaling.get("advanced")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError("spec.scaling.advanced", "must be an object")
    metric = str(raw.get("metricType", ""))
    if metric not in ("", "AverageValue", "Value"):
        raise SpecError("spec.scaling.advanced.metricType", f"must be AverageValue or Value, got {metric!r}")
    restore = raw.get("restoreToOriginalReplicaCount")
    if restore is not None and not isinstance(restore, bool):
        raise SpecError("spec.scaling.advanced.restoreToOriginalReplicaCount", f"must be a boolean, got {restore!r}")
    return AdvancedScaling(
        formula=str(raw.get("formula", "")),
        target=str(raw.get("target", "")),
        activation_target=str(raw.get("activationTarget", "")),
        metric_type=metric,
        restore_to_original_replica_count=restore,
    )


def _behavior(scaling: Mapping[str, Any]) -> Mapping[str, Any] | None:
    raw = scaling.get("behavior")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError("spec.scaling.behavior", "must be an HPA behavior object (scaleUp / scaleDown)")
    return raw


def parse_actor(body: Mapping[str, Any]) -> ActorSpec:
    """Turn an AsyncActor body into an ``ActorSpec`` or raise ``SpecError``."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not _DNS1123_LABEL.match(name):
        raise SpecError(
            "metadata.name",
            f"{name!r} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)",
        )
    spec = body.get("spec") or {}
    transport = spec.get("transport")
    if not isinstance(transport, str) or not transport:
        raise SpecError("spec.transport", "required: the name of a transport from the operator configuration")
    scaling = _section(spec, "scaling")
    scale = ScalingSpec(
        enabled=bool(scaling.get("enabled", False)),
        min_replicas=_int(scaling, "minReplicas", "spec.scaling.minReplicas", 0, 0, 1000),
        advanced=_advanced(scaling),
        behavior=_behavior(scaling),
        max_replicas=_int(scaling, "maxReplicas", "spec.scaling.maxReplicas", 10, 1, 1000),
        queue_length=_int(scaling, "queueLength", "spec.scaling.queueLength", 5, 1, 1_000_000),
        polling_interval=_int(scaling, "pollingInterval", "spec.scaling.pollingInterval", 10, 1, 3600),
        cooldown_period=_int(scaling, "cooldownPeriod", "spec.scaling.cooldownPeriod", 60, 0, 86400),
    )
    if scale.min_replicas > scale.max_replicas:
        raise SpecError("spec.scaling.minReplicas", "must be less than or equal to spec.scaling.maxReplicas")
    workload = _section(spec, "workload")
    wtype = _workload_type(workload)
    replicas = _replicas(spec, workload)
    python = workload.get("pythonExecutable") or "python3"
    if not isinstance(python, str) or not python.strip() or any(ch.isspace() for ch in python):
        raise SpecError("spec.workload.pythonExecutable", f"must be one interpreter path or name, got {python!r}")
    template = check_template(workload.get("template"), end_actor=name in END_ACTORS)
    sidecar = _section(spec, "sidecar")
    env = sidecar.get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, Mapping) and e.get("name") for e in env):
        raise SpecError("spec.sidecar.env", "must be a list of {name, value | valueFrom}")
    resources = sidecar.get("resources")
    timeout = _section(spec, "timeout")
    retry = _section(spec, "retry")
    backoff = retry.get("backoff") or {}
    queue = _section(spec, "queue")
    return ActorSpec(
        name=name,
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        transport=transport,
        workload_type=wtype,
        template=template,
        replicas=replicas,
        scaling=scale,
        sidecar_image=str(sidecar.get("image", "")),
        sidecar_pull_policy=str(sidecar.get("imagePullPolicy", "")),
        sidecar_resources=resources if isinstance(resources, Mapping) else None,
        sidecar_env=tuple(env),
        prefetch=_int(sidecar, "prefetch", "spec.sidecar.prefetch", 1, 1, 1000),
        processing_timeout_s=_int(timeout, "processing", "spec.timeout.processing", 300, 1, 86400),
        graceful_shutdown_s=_int(timeout, "gracefulShutdown", "spec.timeout.gracefulShutdown", 30, 0, 86400),
        max_attempts=_int(retry, "maxAttempts", "spec.retry.maxAttempts", 3, 1, 100),
        backoff=BackoffSpec(
            initial_s=_num(backoff, "initialSeconds", "spec.retry.backoff.initialSeconds", 1.0),
            max_s=_num(backoff, "maxSeconds", "spec.retry.backoff.maxSeconds", 300.0),
        ),
        delete_queue=queue.get("deletionPolicy", "Retain") == "Delete",
        python_executable=python,
        crew_in_runtime=name in END_ACTORS and compat.end_actor_runs_crew_in_runtime(template),
        notices=compat.notices(name, template, name in END_ACTORS, python, spec),
    )
