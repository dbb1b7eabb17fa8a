"""The job deadline (``x-asya-deadline``) as the sidecar enforces it: pure functions, no I/O.

Whoever creates a job may stamp an absolute deadline (Unix seconds, float) on
its envelope; the header travels through every hop. ``processing`` reads it
once per envelope (one dict lookup when absent, so the common path costs
nothing) and either refuses an envelope whose deadline has passed before the
handler is called, or bounds the call by ``min(processing timeout, time left)``.
Both end in error-end as ``deadline_exceeded``, marked non-retryable, with the
details built here: when the deadline was, when it was reached, where.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from asya.contracts import DlqReason, Envelope, EnvelopeError, headers

HINT = "Give the job more time (deadline or timeout_s when submitting it) or make its steps faster."


def of(env: Envelope) -> float | None:
    """The envelope's deadline, None without one (the whole cost for most jobs: two dict lookups)."""
    hdrs = env.get("headers")
    raw = hdrs.get(headers.DEADLINE) if hdrs else None
    return None if raw is None else parse(raw)


def parse(value: object) -> float:
    """The deadline header as Unix seconds; ``EnvelopeError`` naming the header when it is not one."""
    if isinstance(value, bool):
        value = None
    try:
        deadline = float(value)  # type: ignore[arg-type]  # anything else is caught below
    except (TypeError, ValueError):
        deadline = math.nan
    if not math.isfinite(deadline):
        raise EnvelopeError(
            f"headers.{headers.DEADLINE}",
            f"must be an absolute Unix time in seconds (a number such as 1767225600.5), got {value!r}",
        )
    return deadline


def bad_header_details(exc: EnvelopeError) -> dict[str, Any]:
    return {"message": str(exc), "type": "EnvelopeError", "field": exc.field, "retryable": False}


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="milliseconds")


def _where(env: Envelope, actor: str) -> str:
    route = env["route"]
    return f"actor {actor!r} (route.current={route['current']} of {len(route['actors'])} steps)"


def exceeded_details(
    env: Envelope, actor: str, deadline: float, now: float, *, called: bool, timeout_s: float
) -> dict[str, Any]:
    """Error details of an envelope whose job deadline passed before (``called=False``) or during its call."""
    stamp = f"job deadline {_iso(deadline)} ({headers.DEADLINE}={deadline:.3f})"
    if called:
        message = (
            f"{stamp} was reached at {_iso(now)} while {_where(env, actor)} ran its handler for envelope "
            f"{env['id']}: the call was bounded by the time left (the actor's own timeout is {timeout_s:g}s) "
            f"and abandoned. {HINT}"
        )
    else:
        message = (
            f"{stamp} had passed {max(now - deadline, 0.0):.3f}s before envelope {env['id']} could run at "
            f"{_where(env, actor)} (noticed at {_iso(now)}); it was not sent to the handler. {HINT}"
        )
    return {
        "message": message,
        "type": "DeadlineExceeded",
        "deadline": deadline,
        "reached_at": round(now, 3),
        "step": env["route"]["current"],
        "handler_called": called,
        "retryable": False,
        "dlq_reason": DlqReason.DEADLINE_EXCEEDED.value,
    }


__all__ = ["HINT", "bad_header_details", "exceeded_details", "of", "parse"]


# Internal signals of the sidecar's runtime call (raised and caught in ``processing``).


class ConnectTimeout(Exception):
    """The runtime accepted no connection within the processing timeout."""


class DeadlineReached(Exception):
    """The job deadline, not the actor's timeout, cut the call short."""

    def __init__(self, called: bool) -> None:
        super().__init__()
        self.called = called


class HandlerTimeout(Exception):
    """The runtime produced nothing within the processing timeout."""
