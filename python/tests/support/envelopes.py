"""Comparing envelopes that went through a publish: every publish stamps ``x-asya-published-at``."""

from __future__ import annotations

from typing import Any

from asya.contracts.headers import PUBLISHED_AT


def user_headers(env: dict[str, Any]) -> dict[str, Any]:
    """The envelope's headers without the publish timestamp (asserting it is there: a publish sets it)."""
    headers = dict(env.get("headers") or {})
    stamp = headers.pop(PUBLISHED_AT, None)
    assert isinstance(stamp, float), f"a published envelope carries {PUBLISHED_AT}: {env.get('headers')}"
    return headers
