"""Reading the dashboards in dashboards/: their panels' queries, and the variables they use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parents[3] / "dashboards"
BUILTIN = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
METRIC = re.compile(r"\b((?:asya|rabbitmq|kube)_[a-z0-9_]+)\b")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in model.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # rows may nest panels
    return out


def fill(expr: str, actor: str, rate_interval: str = "30s", queue_prefix: str = "asya-") -> str:
    """The query Grafana would send with ``actor`` selected."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__interval", "5s")
        .replace("$__range", "5m")
        .replace("${queue_prefix}", queue_prefix)
        .replace("${actor}", actor)
        .replace("$actor", actor)
    )
