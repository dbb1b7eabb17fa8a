"""Handlers for crew pipeline tests (run inside real runtime processes as ``crew.faulty_handlers.*``)."""

from __future__ import annotations

import os
import random
from typing import Any


class ValidationError(Exception):
    """Its type name is non-retryable by default: error-end dead-letters it at once."""


def flaky(payload: dict[str, Any]) -> dict[str, Any]:
    """Fails transiently on FLAKY_RATE of calls; permanently where the payload says so."""
    actor = os.environ.get("ASYA_ACTOR", "?")
    if payload.get("permanent_at") == actor:
        raise ValidationError(f"input {payload.get('i')} can never pass {actor}")
    if random.random() < float(os.environ.get("FLAKY_RATE", "0.1")):
        raise RuntimeError("transient glitch")
    return {**payload, "trail": [*payload.get("trail", []), actor]}


def always_fails(payload: Any) -> Any:
    calls = os.environ.get("CALLS_FILE")
    if calls:
        with open(calls, "a") as fh:
            fh.write("call\n")
    raise RuntimeError("this handler always fails")


def crash(payload: Any) -> Any:
    """Kills its own process every time (a segfault or OOM kill, as far as the sidecar can tell)."""
    os._exit(13)


def fixed_after_file(payload: dict[str, Any]) -> dict[str, Any]:
    """Fails until the file named by FIX_FILE exists: a bug fixed by a deploy."""
    if not os.path.exists(os.environ["FIX_FILE"]):
        raise RuntimeError("bug not fixed yet")
    return {**payload, "fixed": True}


def grow(payload: dict[str, Any]) -> dict[str, Any]:
    """Passes a big payload on, checking it arrived whole, and appends a step mark."""
    assert len(payload["blob"]) == payload["size"], "payload arrived truncated"
    return {**payload, "hops": payload.get("hops", 0) + 1}
