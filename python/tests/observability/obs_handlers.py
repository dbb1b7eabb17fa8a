"""Handlers for the dashboard proof: one actor that fails when the payload asks, so it has both outcomes."""

from __future__ import annotations

from typing import Any


def flaky(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("fail"):
        raise ValueError("asked to fail")
    return {**payload, "n": payload["n"] + 1}
