"""kubeconform schemas that openapi2jsonschema cannot write: each CRD's kinds, and the CRD kind itself.

openapi2jsonschema (core kinds, from the apiserver's /openapi/v2) refuses CustomResourceDefinition
(its JSONSchemaProps refer to themselves) and kubeconform's CRD script puts
``additionalProperties: false`` even under ``x-kubernetes-preserve-unknown-fields``, which
rejects valid pod templates inside an AsyncActor. So here: strict where the apiserver is
strict (it prunes unknown fields), open where it preserves them; file names follow
kubeconform's ``{kind}-{group's first label}-{version}.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads a bare ``=`` as the "value" tag; prometheus-operator's CRDs have ``enum: [=, ...]``."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def _strict(node: Any, preserve: bool = False) -> Any:
    """JSON Schema of an OpenAPI v3 structural schema, unknown fields refused unless preserved."""
    if isinstance(node, list):
        return [_strict(n, preserve) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v, preserve or bool(node.get("x-kubernetes-preserve-unknown-fields"))) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for key in ("apiVersion", "kind"):
            props.setdefault(key, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    keeps_unknown = preserve or node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{file name: schema} for every served version of ``crd``."""
    spec = crd["spec"]
    kind, group = spec["names"]["kind"], spec["group"]
    out = {}
    for version in spec["versions"]:
        schema = _strict(copy.deepcopy((version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}))
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        props.setdefault("metadata", {"type": "object"})
        schema["additionalProperties"] = False  # the apiserver prunes unknown top-level fields
        out[f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"] = schema
    return out


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for v in node.values():
            found |= _refs(v)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _core_strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_core_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _core_strict(v) for k, v in node.items()}
    if out.get("format") == "int-or-string":
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def referencing_schema(swagger: dict[str, Any], key: str) -> dict[str, Any]:
    """A stand-alone schema for definition ``key`` that keeps ``$ref`` (for self-referring types)."""
    defs = swagger["definitions"]
    todo, seen = [key], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(_refs(defs[name]) - seen)
    return {"$ref": f"#/definitions/{key}", "definitions": {n: _core_strict(defs[n]) for n in sorted(seen)}}


CRD_KIND = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"


def write_extra_schemas(out: Path, swagger: dict[str, Any], crd_files: list[Path]) -> list[str]:
    """Write the CRD kind's schema and every CRD's kinds into ``out``; returns the file names."""
    written = {"customresourcedefinition-apiextensions-v1.json": referencing_schema(swagger, CRD_KIND)}
    for f in crd_files:
        for doc in yaml.load_all(f.read_text(), Loader=_Loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                written.update(crd_schemas(doc))
    for name, schema in written.items():
        (out / name).write_text(json.dumps(schema, indent=1, sort_keys=True))
    return sorted(written)
