"""Handlers for the dashboard proof: one actor that fails when the payload asks, so it has both outcomes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def flaky(payload: dict[str, Any]) -> dict[str, Any]:
    """Raises when ``fail`` is set; with ``die_marker``, kills its runtime the first time (a crash to restart)."""
    if payload.get("fail"):
        raise ValueError("asked to fail")
    marker = payload.get("die_marker")
    if marker and not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(17)
    return {**payload, "n": payload["n"] + 1}
