"""Pure functions that turn runtime results into the envelopes the sidecar sends.

No I/O here: given the input envelope and the runtime's items, decide each
output's id, route and destination, and shape error-end envelopes. Keeping this
pure makes the data path easy to test and to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asya.contracts import ERROR_END, DlqReason, Envelope, EnvelopeError, headers, next_destination, validate_envelope
from asya.engine import failures

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
    if "route" not in item or "payload" not in item:
        missing = "route" if "route" not in item else "payload"
        raise EnvelopeError(missing, f"the runtime's success item has no {missing!r} (keys: {sorted(item)})")
    out["route"] = item["route"]
    headers = item.get("headers", source.get("headers"))
    if headers is not None:
        out["headers"] = headers
    out["payload"] = item["payload"]
    out = validate_envelope(out)
    return count_hop(source, out)


def hops(env: Envelope) -> int:
    """Looping outputs this envelope has passed through (``x-asya-hops``; absent or unreadable = 0)."""
    value = (env.get("headers") or {}).get(headers.HOPS)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def count_hop(source: Envelope, out: Envelope) -> Envelope:
    """Stamp ``x-asya-hops`` on ``out`` when the envelope may be looping, else leave it untouched.

    A route of fixed length whose ``current`` only moves forward ends by itself, so a plain pipeline
    carries no counter. The count starts at the first output that stays at its step (envelope mode,
    ``route.current`` unchanged: 0.1.x's deliberate loop) or grows its route, and from then on every
    output adds one; the sidecar refuses an input whose count has reached ``ASYA_MAX_HOPS``.
    """
    before, after = source["route"], out["route"]
    looping = after["current"] <= before["current"] or len(after["actors"]) > len(before["actors"])
    counted = hops(source)
    if not looping and not counted:
        return out
    return {**out, "headers": {**(out.get("headers") or {}), headers.HOPS: counted + 1}}


def hop_budget_details(env: Envelope, actor: str, max_hops: int) -> dict[str, Any]:
    """Error details for an envelope that spent its hop budget: dead-lettered, never retried."""
    return {
        "message": (
            f"envelope {env['id']} passed through {hops(env)} outputs ({headers.HOPS}), the limit "
            f"ASYA_MAX_HOPS={max_hops}: its route loops at actor {actor!r} (route.current="
            f"{env['route']['current']} of {len(env['route']['actors'])} steps). An envelope-mode handler that "
            "leaves route.current unchanged sends the envelope back to itself; make it advance the route."
        ),
        "type": "HopBudgetExhausted",
        "retryable": False,
        "dlq_reason": DlqReason.HOP_BUDGET.value,
    }


def destination(env: Envelope) -> str:
    """Actor whose queue gets ``env``: the route's current actor, or happy-end when done."""
    return next_destination(env)


def error_envelope(
    source: Envelope, code: str, details: dict[str, Any], retry_defaults: Mapping[str, float] | None = None
) -> Envelope:
    """Envelope for error-end: the failing step's route, headers and original payload kept, budget stamped."""
    return stamp_retry_budget(failures.error_message(source, code, details), retry_defaults)


def stamp_retry_budget(record: Envelope, retry_defaults: Mapping[str, float] | None) -> Envelope:
    """Fill the ``x-asya-retry-*`` headers with this actor's budget where the record has none for this step.

    A budget an earlier step left behind is replaced, so each step retries on its own terms.
    """
    if not retry_defaults:
        return record
    hdrs = dict(record.get("headers") or {})
    route = record.get("route")
    step = route.get("current") if isinstance(route, dict) else None
    other_step = headers.RETRY_STEP in hdrs and hdrs[headers.RETRY_STEP] != step
    for key, value in retry_defaults.items():
        if other_step or key not in hdrs:
            hdrs[key] = int(value) if key == headers.RETRY_MAX else value
    return {**record, "headers": hdrs}


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


__all__ = [
    "ERROR_END",
    "count_hop",
    "destination",
    "error_envelope",
    "hop_budget_details",
    "hops",
    "output_envelope",
    "route_mismatch_details",
    "stamp_retry_budget",
]
