"""The operator's configuration file: declared transports and sidecar defaults.

The Helm chart renders it into a ConfigMap mounted at ``$ASYA_OPERATOR_CONFIG``
(default ``/etc/asya/operator.yaml``); a pod-template checksum restarts the operator
when it changes, so it is read once at startup. Shape::

    transports:
      rabbit:                       # the name AsyncActors use in spec.transport
        type: rabbitmq              # local | rabbitmq | sqs
        urlEnv: ASYA_RABBITMQ_URL   # the operator's own connection (or `url:` without credentials)
        secretRef: {name: asya-rabbitmq, key: url}   # what sidecars and KEDA read
        options: {queue_type: quorum}
      sqs:
        type: sqs
        region: eu-west-1
        endpoint: http://elasticmq:9324   # empty = AWS
        credentialsSecret: {name: aws, accessKeyIdKey: AWS_ACCESS_KEY_ID, secretAccessKeyKey: AWS_SECRET_ACCESS_KEY}
        # or podIdentity: aws
    sidecar: {image: ..., imagePullPolicy: IfNotPresent, resources: {...}, env: [...]}
    crew: {image: ...}              # end actors declared with asya-runtime (0.1.x); default: the sidecar image
    scaling:
      behavior: asya-0.1            # HPA behaviour for every ScaledObject: a mapping, asya-0.1, or absent
    gatewayUrl: http://asya-gateway:8080
    gatewayToken: {name: asya-gateway-auth, key: report-token}   # -> ASYA_GATEWAY_TOKEN (secretKeyRef)

Credentials never appear in rendered manifests: sidecars and KEDA get them through
``secretKeyRef``/``secretTargetRef``; a ``url`` with a password in it is refused here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

TRANSPORT_TYPES = ("local", "rabbitmq", "sqs")

ASYA_01_BEHAVIOR: Mapping[str, Any] = {
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    },
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 10, "periodSeconds": 60},
            {"type": "Percent", "value": 100, "periodSeconds": 60},
        ],
    },
}
"""The HPA behaviour Asya 0.1.x put on every ScaledObject (``scaling.behavior: asya-0.1``)."""
BEHAVIOR_PRESETS: Mapping[str, Mapping[str, Any]] = {"asya-0.1": ASYA_01_BEHAVIOR}


class ConfigError(ValueError):
    """The operator configuration file is unusable; the message names the key."""


@dataclasses.dataclass(frozen=True)
class SecretKeyRef:
    """A key in a Secret in the actor's namespace."""

    name: str
    """Secret name."""
    key: str
    """Key inside the Secret."""


@dataclasses.dataclass(frozen=True)
class TransportConfig:
    """One declared transport."""

    name: str
    """The name AsyncActors refer to in ``spec.transport``."""
    type: str
    """local | rabbitmq | sqs."""
    url: str = ""
    """The operator's own connection URL (local: the directory)."""
    url_secret: SecretKeyRef | None = None
    """Secret holding the URL sidecars and KEDA use; None = they get ``url`` as a plain value."""
    region: str = "us-east-1"
    """SQS region."""
    endpoint: str = ""
    """SQS endpoint override (ElasticMQ); empty = AWS."""
    access_key_secret: SecretKeyRef | None = None
    """SQS: Secret key holding AWS_ACCESS_KEY_ID."""
    secret_key_secret: SecretKeyRef | None = None
    """SQS: Secret key holding AWS_SECRET_ACCESS_KEY."""
    pod_identity: str = ""
    """SQS: KEDA podIdentity provider (e.g. ``aws``) instead of key secrets."""
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Transport-specific extras passed to the transport and the sidecar."""

    @property
    def can_scale(self) -> bool:
        """Whether KEDA has a scaler for this transport."""
        return self.type in ("rabbitmq", "sqs")


@dataclasses.dataclass(frozen=True)
class SidecarDefaults:
    """Sidecar settings used when an actor does not override them."""

    image: str = "ghcr.io/asya/asya-sidecar:0.2.0"
    """Sidecar image."""
    pull_policy: str = "IfNotPresent"
    """Sidecar imagePullPolicy."""
    resources: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    )
    """Sidecar resources."""
    env: tuple[Mapping[str, Any], ...] = ()
    """Env entries added to every sidecar (actor env wins by name)."""


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """The whole configuration file."""

    transports: Mapping[str, TransportConfig] = dataclasses.field(default_factory=dict)
    """Declared transports by name."""
    sidecar: SidecarDefaults = SidecarDefaults()
    """Sidecar defaults."""
    gateway_url: str = ""
    """Injected as ASYA_GATEWAY_URL when set."""
    gateway_token_secret: SecretKeyRef | None = None
    """The gateway's report token, injected as ASYA_GATEWAY_TOKEN through secretKeyRef (never as a value)."""
    crew_image: str = ""
    """Image for end actors declared with an ``asya-runtime`` container; empty = the sidecar image."""
    scaling_behavior: Mapping[str, Any] | None = None
    """HPA behaviour for ScaledObjects whose actor sets none; None = Kubernetes' HPA defaults."""


def _secret(raw: Any, where: str, key_field: str = "key") -> SecretKeyRef | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw.get("name") or not raw.get(key_field):
        raise ConfigError(f"{where}: needs 'name' and '{key_field}'")
    return SecretKeyRef(str(raw["name"]), str(raw[key_field]))


def _transport(name: str, raw: Any, env: Mapping[str, str]) -> TransportConfig:
    where = f"transports.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    ttype = raw.get("type")
    if ttype not in TRANSPORT_TYPES:
        raise ConfigError(f"{where}.type: must be one of {', '.join(TRANSPORT_TYPES)}, got {ttype!r}")
    url = str(raw.get("url", ""))
    if raw.get("urlEnv"):
        url = env.get(str(raw["urlEnv"]), "")
        if not url:
            raise ConfigError(f"{where}.urlEnv: environment variable {raw['urlEnv']} is not set")
    elif urlsplit(url).password:
        raise ConfigError(f"{where}.url: holds a password; put it in a Secret and use urlEnv + secretRef")
    if ttype == "sqs" and not url:
        url = str(raw.get("endpoint", ""))
    creds = raw.get("credentialsSecret")
    return TransportConfig(
        name=name,
        type=str(ttype),
        url=url,
        url_secret=_secret(raw.get("secretRef"), f"{where}.secretRef"),
        region=str(raw.get("region", "us-east-1")),
        endpoint=str(raw.get("endpoint", "")),
        access_key_secret=_secret(creds, f"{where}.credentialsSecret", "accessKeyIdKey") if creds else None,
        secret_key_secret=(
            SecretKeyRef(str(creds["name"]), str(creds["secretAccessKeyKey"]))
            if creds and creds.get("secretAccessKeyKey")
            else None
        ),
        pod_identity=str(raw.get("podIdentity", "")),
        options={str(k): str(v) for k, v in (raw.get("options") or {}).items()},
    )


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> OperatorConfig:
    """Validate a loaded YAML document into ``OperatorConfig``; raises ``ConfigError``."""
    env = os.environ if env is None else env
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("the operator configuration must be a mapping")
    transports = raw.get("transports") or {}
    if not isinstance(transports, Mapping):
        raise ConfigError("transports: must map names to transport settings")
    side = raw.get("sidecar") or {}
    defaults = SidecarDefaults()
    sidecar = SidecarDefaults(
        image=str(side.get("image", defaults.image)),
        pull_policy=str(side.get("imagePullPolicy", defaults.pull_policy)),
        resources=side.get("resources", defaults.resources),
        env=tuple(side.get("env") or ()),
    )
    crew = raw.get("crew") or {}
    if not isinstance(crew, Mapping):
        raise ConfigError("crew: must be a mapping ({image: ...})")
    return OperatorConfig(
        transports={str(n): _transport(str(n), t, env) for n, t in transports.items()},
        sidecar=sidecar,
        gateway_url=str(raw.get("gatewayUrl", "")),
        gateway_token_secret=_secret(raw.get("gatewayToken"), "gatewayToken"),
        crew_image=str(crew.get("image", "")),
        scaling_behavior=_behavior(raw.get("scaling") or {}),
    )


def _behavior(scaling: Any) -> Mapping[str, Any] | None:
    if not isinstance(scaling, Mapping):
        raise ConfigError("scaling: must be a mapping")
    raw = scaling.get("behavior")
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in BEHAVIOR_PRESETS:
            raise ConfigError(f"scaling.behavior: unknown preset {raw!r} (known: {', '.join(BEHAVIOR_PRESETS)})")
        return BEHAVIOR_PRESETS[raw]
    if not isinstance(raw, Mapping) or not set(raw) <= {"scaleUp", "scaleDown"}:
        raise ConfigError("scaling.behavior: must be an HPA behavior mapping (scaleUp / scaleDown) or a preset name")
    return raw


def load_config(path: Path) -> OperatorConfig:
    """Read and validate the configuration file; a missing file means no transports."""
    if not path.exists():
        return OperatorConfig()
    with path.open() as f:
        return parse_config(yaml.safe_load(f))
