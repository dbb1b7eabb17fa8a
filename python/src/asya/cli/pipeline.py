"""Pipeline files for ``asya dev run``: which actors exist, their handlers, the route, the inputs.

A pipeline file is YAML::

    name: text-insights
    pythonpath: .                 # where handler modules live, relative to this file
    route: [normalize, chunk, score]
    actors:
      normalize: {handler: handlers.normalize}
      score: {handler: handlers.Scorer.score, timeout: 30, replicas: 2, prefetch: 8}
    inputs: inputs.jsonl          # one JSON payload per line; or an inline list of payloads

Parsed into frozen dataclasses; every mistake is reported with the key at fault.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from asya.contracts import END_ACTORS, EnvelopeError, validate_actor_name


class PipelineError(ValueError):
    """The pipeline file is wrong; the message names the key and the file."""


@dataclasses.dataclass(frozen=True)
class ActorSpec:
    """One actor of a local pipeline."""

    name: str
    handler: str
    """``module.function`` or ``module.Class.method``."""
    mode: str = "payload"
    """``payload`` or ``envelope`` (ASYA_HANDLER_MODE)."""
    timeout_s: float = 60.0
    """Processing timeout per envelope, seconds."""
    replicas: int = 1
    """Sidecar + runtime pairs started for this actor."""
    prefetch: int = 8
    """Envelopes in flight per replica."""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    """Extra environment for the runtime (handler configuration)."""


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    path: Path
    pythonpath: Path
    route: tuple[str, ...]
    actors: tuple[ActorSpec, ...]
    inputs: tuple[Any, ...]


def load(path: Path) -> Pipeline:
    """Read and check a pipeline file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(f"{path}: cannot read pipeline: {exc}") from exc
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: top level must be a mapping")
    base = path.parent
    actors_raw = raw.get("actors")
    if not isinstance(actors_raw, dict) or not actors_raw:
        raise PipelineError(f"{path}: 'actors' must map actor names to {{handler: ...}}")
    actors = tuple(_actor(path, name, spec) for name, spec in actors_raw.items())
    names = {a.name for a in actors}
    route = raw.get("route")
    if not isinstance(route, list) or not route:
        raise PipelineError(f"{path}: 'route' must be a non-empty list of actor names")
    for step in route:
        if step not in names:
            raise PipelineError(f"{path}: route step {step!r} is not declared under 'actors'")
    return Pipeline(
        name=str(raw.get("name") or path.stem),
        path=path,
        pythonpath=(base / str(raw.get("pythonpath", "."))).resolve(),
        route=tuple(route),
        actors=actors,
        inputs=tuple(_inputs(path, raw.get("inputs"))),
    )


def _actor(path: Path, name: object, spec: object) -> ActorSpec:
    try:
        validate_actor_name(name, "actor")
    except EnvelopeError as exc:
        raise PipelineError(f"{path}: actors: {exc}") from None
    assert isinstance(name, str)
    if name in END_ACTORS:
        raise PipelineError(f"{path}: actors.{name}: end actors are started automatically; do not declare them")
    if not isinstance(spec, dict) or not isinstance(spec.get("handler"), str):
        raise PipelineError(f"{path}: actors.{name}: needs 'handler: module.function'")
    mode = str(spec.get("mode", "payload"))
    if mode not in ("payload", "envelope"):
        raise PipelineError(f"{path}: actors.{name}.mode must be 'payload' or 'envelope'")
    return ActorSpec(
        name=name,
        handler=spec["handler"],
        mode=mode,
        timeout_s=float(spec.get("timeout", 60)),
        replicas=max(int(spec.get("replicas", 1)), 1),
        prefetch=max(int(spec.get("prefetch", 8)), 1),
        env={str(k): str(v) for k, v in (spec.get("env") or {}).items()},
    )


def _inputs(path: Path, value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        file = path.parent / value
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise PipelineError(f"{path}: inputs: cannot read {file}: {exc}") from exc
        out = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise PipelineError(f"{file}:{n}: not a JSON payload: {exc}") from exc
        return out
    if value is None:
        return []
    raise PipelineError(f"{path}: 'inputs' must be a list of payloads or a .jsonl file name")
