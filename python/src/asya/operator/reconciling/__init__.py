"""Pure reconciliation: AsyncActor spec -> desired children and status.

Nothing in this package performs I/O, so every rule is unit-tested without a cluster;
``asya.operator.handlers`` reads the world, calls these functions and writes the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from asya.operator import config as configs
from asya.operator.reconciling import compat, scaling, specs, status, workload

__all__ = ["HASH_ANNOTATION", "compat", "desired_children", "fingerprint", "scaling", "specs", "status", "workload"]

HASH_ANNOTATION = "asya.sh/desired-hash"
"""Annotation holding the fingerprint of what the operator last applied to a child."""


def fingerprint(manifest: Mapping[str, Any]) -> str:
    """Stable digest of a rendered manifest (key order does not matter)."""
    blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the fingerprint annotation to ``manifest`` (in place) and return it."""
    digest = fingerprint(manifest)
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return manifest


def desired_children(
    actor: specs.ActorSpec,
    transport: configs.TransportConfig,
    cfg: configs.OperatorConfig,
    runtime_source: str,
) -> tuple[list[dict[str, Any]], status.Problem | None]:
    """Every child the actor should have, stamped, in apply order; plus a scaling problem.

    Raises ``specs.SpecError`` when the template cannot be completed.
    """
    children = [] if actor.is_end else [workload.render_runtime_configmap(actor, runtime_source)]
    children.append(workload.render_workload(actor, transport, cfg))
    problem = None
    if actor.scaling.enabled:
        try:
            children.extend(scaling.render_scaling(actor, transport, cfg.scaling_behavior))
        except scaling.ScalingError as exc:
            problem = status.Problem("ScalingUnavailable", str(exc))
    return [stamp(c) for c in children], problem
