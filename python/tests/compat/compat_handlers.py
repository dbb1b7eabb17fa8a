"""Handlers for the compatibility tests (run by our runtime as ``compat.compat_handlers.<name>``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def self_loop(envelope: dict[str, Any]) -> dict[str, Any]:
    """Envelope mode: sends the envelope back to this actor forever (route.current unchanged)."""
    payload = envelope["payload"]
    return {**envelope, "payload": {**payload, "visits": payload.get("visits", 0) + 1}}


def loop_then_advance(envelope: dict[str, Any]) -> dict[str, Any]:
    """Envelope mode: comes back to itself ``payload.loops`` times on purpose, then moves on."""
    payload = {**envelope["payload"], "visits": envelope["payload"].get("visits", 0) + 1}
    route = dict(envelope["route"])
    if payload["visits"] > payload["loops"]:
        route["current"] += 1
    return {**envelope, "route": route, "payload": payload}


def numbered(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for i in range(payload["n"]):
        yield {"i": i}


def numbered_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"i": i} for i in range(payload["n"])]
