"""Pure functions that turn runtime results into the envelopes the sidecar sends.

No I/O here: given the input envelope and the runtime's items, decide each
output's id, route and destination, and shape error-end envelopes. Keeping this
pure makes the data path easy to test and to read.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from asya.contracts import ERROR_END, Envelope, ErrorCode, headers, next_destination, validate_envelope

# Fields the runtime item replaces; everything else on the input (unknown
# top-level fields included) is carried over to every output.
_ITEM_FIELDS = ("payload", "route", "headers", "id", "parent_id")


def output_envelope(source: Envelope, item: dict[str, Any], index: int, fan_out: bool) -> Envelope:
    """Merge one success item into a copy of ``source``.

    A single output keeps the input id, so a 1:1 pipeline has one id end to end.
    Fan-out children get ``<id>.<index>`` with ``parent_id`` = input id: stable
    across redeliveries, which lets happy-end store each child exactly once.
    """
    out: Envelope = {k: v for k, v in source.items() if k not in _ITEM_FIELDS}
    if "parent_id" in source:
        out["parent_id"] = source["parent_id"]
    if fan_out:
        out["id"] = item.get("id") or f"{source['id']}.{index}"
        out["parent_id"] = item.get("parent_id") or source["id"]
    else:
        out["id"] = item.get("id") or source["id"]
        if item.get("parent_id"):
            out["parent_id"] = item["parent_id"]
    out["route"] = item["route"]
    headers = item.get("headers", source.get("headers"))
    if headers is not None:
        out["headers"] = headers
    out["payload"] = item["payload"]
    return validate_envelope(out)


def destination(env: Envelope) -> str:
    """Actor whose queue gets ``env``: the route's current actor, or happy-end when done."""
    return next_destination(env)


def error_envelope(
    source: Envelope, code: str, details: dict[str, Any], retry_defaults: Mapping[str, float] | None = None
) -> Envelope:
    """Envelope for error-end: the failing step's route, headers and original payload kept.

    ``retry_defaults`` (this actor's budget) fill the ``x-asya-retry-*`` headers when the
    envelope has none for this step; a budget an earlier step left behind is replaced.
    """
    out: Envelope = {k: v for k, v in source.items() if k != "payload"}
    if retry_defaults:
        hdrs = dict(source.get("headers") or {})
        step = source.get("route", {}).get("current")
        other_step = headers.RETRY_STEP in hdrs and hdrs[headers.RETRY_STEP] != step
        for key, value in retry_defaults.items():
            if other_step or key not in hdrs:
                hdrs[key] = int(value) if key == headers.RETRY_MAX else value
        out["headers"] = hdrs
    out["payload"] = {
        "error": code,
        "details": _complete(details),
        "original_payload": source.get("payload"),
    }
    return out


def unparseable_envelope(body: bytes, actor: str, field: str, message: str) -> Envelope:
    """Wrap a body that is not a valid envelope so error-end can keep it as evidence.

    The id is derived from the body so a redelivered copy maps to the same dead letter.
    """
    digest = hashlib.sha256(body).hexdigest()[:16]
    try:
        original: dict[str, Any] = {"original_body": body.decode("utf-8")}
    except UnicodeDecodeError:
        original = {"original_body_base64": base64.b64encode(body).decode()}
    return {
        "id": f"invalid-{digest}",
        "route": {"actors": [actor], "current": 0},
        "headers": {},
        "payload": {
            "error": ErrorCode.MSG_PARSING_ERROR.value,
            "details": _complete(
                {
                    "message": f"message received by actor {actor!r} is not a valid envelope: {field}: {message}",
                    "type": "EnvelopeError",
                    "field": field,
                }
            ),
            **original,
        },
    }


def route_mismatch_details(env: Envelope, actor: str) -> dict[str, Any]:
    route = env["route"]
    expected = next_destination(env)
    return {
        "message": (
            f"envelope {env['id']} reached actor {actor!r} but its route points at {expected!r} "
            f"(route.current={route['current']} of {route['actors']}); it was published to the wrong queue"
        ),
        "type": "RouteMismatch",
    }


def _complete(details: dict[str, Any]) -> dict[str, Any]:
    out = {"message": "", "type": "", "traceback": ""}
    out.update(details)
    return out


__all__ = [
    "ERROR_END",
    "destination",
    "error_envelope",
    "output_envelope",
    "route_mismatch_details",
    "unparseable_envelope",
]
