"""Tool configuration: YAML files that turn a named tool call into a pipeline job.

Read once at start-up (``ASYA_GATEWAY_TOOLS``) and served by ``tools/list``
(MCP), ``POST /mcp/tools/call`` and the ``{"tool", "params"}`` form of
``POST /jobs``. A file holds::

    routes:                       # optional named route templates
      text: {actors: [normalize, chunk, classify], metadata: {...}}
    tools:
      - name: classify_text
        description: ...
        parameters: {type: object, ...}   # a JSON Schema, checked as one
        route: {template: text}           # or {actors: [...], metadata?: {...}}

Templates and tools from every file merge into one namespace, so a tool may use
a template from another file. Every mistake is a ``ToolConfigError`` naming the
file and the field, and a name defined twice names both files: a gateway with
a broken tool file refuses to start instead of serving half its tools.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.protocols import Validator

from asya.contracts import EnvelopeError, validate_actor_name

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
"""What MCP clients accept as a tool name."""
_TOOL_KEYS = frozenset({"name", "description", "parameters", "route"})


class ToolConfigError(ValueError):
    """A tool file is unreadable or wrong; the message names the file and the field."""


class ArgumentError(ValueError):
    """Arguments do not match a tool's schema; ``path`` names the offending field (``items[2].text``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclasses.dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]
    """The JSON Schema of the arguments (what ``tools/list`` shows as ``inputSchema``)."""
    actors: tuple[str, ...]
    metadata: Mapping[str, Any] | None
    """``route.metadata`` of every job this tool creates."""
    source: str
    """The file it came from (for error messages)."""
    validator: Validator = dataclasses.field(compare=False, repr=False)

    def check(self, arguments: object) -> None:
        """Raise ``ArgumentError`` for the first field (in document order) that breaks the schema."""
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
        if not errors:
            return
        error = jsonschema.exceptions.best_match(errors) or errors[0]
        parts = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            if missing:
                parts.append(missing[0])
        raise ArgumentError(field_path(parts), error.message)


def field_path(parts: Iterable[object]) -> str:
    """``["items", 2, "text"]`` → ``items[2].text``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ToolConfigError(f"{path}: no such file or directory (from ASYA_GATEWAY_TOOLS)")
    return files


def load(paths: Iterable[Path]) -> dict[str, Tool]:
    """Every tool from ``paths`` (files, or directories of ``*.yaml``), by name."""
    documents: list[tuple[str, dict[str, Any]]] = []
    for file in _files(paths):
        try:
            data = yaml.safe_load(file.read_text())
        except OSError as exc:
            raise ToolConfigError(f"{file}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ToolConfigError(f"{file}: not valid YAML: {exc}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ToolConfigError(f"{file}: must be a mapping with 'tools' (and optional 'routes')")
        unknown = sorted(set(data) - {"tools", "routes"})
        if unknown:
            raise ToolConfigError(f"{file}: {unknown[0]}: unknown key (expected tools, routes)")
        documents.append((str(file), data))
    templates = _templates(documents)
    tools: dict[str, Tool] = {}
    for source, data in documents:
        entries = data.get("tools", [])
        if not isinstance(entries, list):
            raise ToolConfigError(f"{source}: tools: must be a list")
        for index, entry in enumerate(entries):
            tool = _tool(source, f"tools[{index}]", entry, templates)
            if tool.name in tools:
                raise ToolConfigError(
                    f"tool {tool.name!r} is defined twice: in {tools[tool.name].source} and in {source}"
                )
            tools[tool.name] = tool
    return tools


def _templates(documents: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[str, tuple[str, ...], Any]]:
    """Route templates from every file: name → (source, actors, metadata)."""
    found: dict[str, tuple[str, tuple[str, ...], Any]] = {}
    for source, data in documents:
        routes = data.get("routes", {})
        if not isinstance(routes, dict):
            raise ToolConfigError(f"{source}: routes: must be a mapping of name to route")
        for name, route in routes.items():
            if name in found:
                raise ToolConfigError(f"route template {name!r} is defined twice: in {found[name][0]} and in {source}")
            actors, metadata = _route(source, f"routes.{name}", route)
            found[str(name)] = (source, actors, metadata)
    return found


def _route(source: str, field: str, route: object) -> tuple[tuple[str, ...], Any]:
    if not isinstance(route, dict):
        raise ToolConfigError(f"{source}: {field}: must be a mapping with 'actors'")
    unknown = sorted(set(route) - {"actors", "metadata"})
    if unknown:
        raise ToolConfigError(f"{source}: {field}.{unknown[0]}: unknown key (expected actors, metadata)")
    actors = route.get("actors")
    if not isinstance(actors, list) or not actors:
        raise ToolConfigError(f"{source}: {field}.actors: must be a non-empty list of actor names")
    for i, actor in enumerate(actors):
        try:
            validate_actor_name(actor, f"{field}.actors[{i}]")
        except EnvelopeError as exc:
            raise ToolConfigError(f"{source}: {exc.field}: {exc.reason}") from None
        if actor in ("happy-end", "error-end"):
            raise ToolConfigError(f"{source}: {field}.actors[{i}]: the end actors are added by the platform")
    metadata = route.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ToolConfigError(f"{source}: {field}.metadata: must be a mapping")
    return tuple(actors), metadata


def _tool(source: str, field: str, entry: object, templates: Mapping[str, tuple[str, tuple[str, ...], Any]]) -> Tool:
    if not isinstance(entry, dict):
        raise ToolConfigError(f"{source}: {field}: must be a mapping with name, description, parameters, route")
    unknown = sorted(set(entry) - _TOOL_KEYS)
    if unknown:
        raise ToolConfigError(f"{source}: {field}.{unknown[0]}: unknown key (expected {', '.join(sorted(_TOOL_KEYS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise ToolConfigError(f"{source}: {field}.name: required, 1-128 of letters, digits, '_', '-', '.'")
    field = f"{field} ({name})"
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ToolConfigError(f"{source}: {field}.description: must be a string")
    schema = entry.get("parameters", {"type": "object"})
    if not isinstance(schema, dict):
        raise ToolConfigError(f"{source}: {field}.parameters: must be a JSON Schema object")
    if schema.get("type", "object") != "object":
        raise ToolConfigError(f"{source}: {field}.parameters.type: tool arguments are an object, so 'object'")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = field_path(["parameters", *exc.absolute_path])
        raise ToolConfigError(f"{source}: {field}.{where}: not a valid JSON Schema: {exc.message}") from None
    route = entry.get("route")
    if isinstance(route, dict) and "template" in route:
        if set(route) != {"template"}:
            raise ToolConfigError(f"{source}: {field}.route: a template route has only 'template'")
        template = route["template"]
        if template not in templates:
            known = ", ".join(sorted(templates)) or "none defined"
            raise ToolConfigError(f"{source}: {field}.route.template: no route template {template!r} ({known})")
        _, actors, metadata = templates[template]
    else:
        actors, metadata = _route(source, f"{field}.route", route)
    return Tool(
        name=name,
        description=description,
        parameters={"type": "object", **schema},
        actors=actors,
        metadata=metadata,
        source=source,
        validator=cls(schema, format_checker=cls.FORMAT_CHECKER),
    )
