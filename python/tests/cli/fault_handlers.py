"""Handlers of the tiny three-step pipeline the dev-run fault test drives (plain Python, no Asya imports).

Deterministic by input number ``n``: every 10th input fans out into two
envelopes at step b, every 25th fails at step c with a ``ValidationError``
(non-retryable, so it is dead-lettered at once). The short sleeps keep work in
flight long enough for the fault injector to hit it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

STEP_SECONDS = 0.08


class ValidationError(Exception):
    """Named like the default non-retryable type, so error-end dead-letters it without retries."""


def step_a(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "a": True}


def step_b(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    time.sleep(STEP_SECONDS)
    for part in range(2 if payload["n"] % 10 == 0 else 1):
        yield {**payload, "part": part}


def step_c(payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(STEP_SECONDS)
    if payload["n"] % 25 == 0:
        raise ValidationError(f"input {payload['n']} is refused on purpose")
    return {**payload, "c": True}
