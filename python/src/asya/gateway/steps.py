"""Step events a successful final report vouches for, when the step's own report is late.

Progress reports leave each sidecar in the background, while happy-end sends its
final report before it acknowledges. So the final report of a fast pipeline can
reach the gateway before the last step's progress report, and the stream would
end (``final``) without ever showing that step; the late report is then ignored,
because an ended job takes no more events. A result stored by happy-end means
every step of its route up to ``route.current`` succeeded, so before the final
event the gateway adds a ``progress`` event for each such step it has not seen,
marked ``"inferred": true``. Streams then always show every step, in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

MAX_INFERRED = 100
"""At most this many steps are filled in for one job (a route is rarely longer; the bound keeps one report cheap)."""

AddEvent = Callable[[asyncpg.Connection, str, str, Mapping[str, Any]], Awaitable[int]]


def route_steps(report: Mapping[str, Any]) -> tuple[list[str], int] | None:
    """(actors, index of the last step that ran) from a final report's ``route``; None when it has none usable."""
    route = report.get("route")
    if not isinstance(route, dict):
        return None
    actors, current = route.get("actors"), route.get("current")
    if not isinstance(actors, list) or not actors or not all(isinstance(a, str) for a in actors):
        return None
    if isinstance(current, int) and not isinstance(current, bool) and 0 <= current < len(actors):
        return actors, current
    return actors, len(actors) - 1


async def fill_in(
    conn: asyncpg.Connection, job_id: str, report: Mapping[str, Any], add_event: AddEvent, *, child: bool
) -> int:
    """Add the inferred progress events of a succeeded job; how many were added.

    A fan-out ``child`` starts after its parent's split step, which its route does not say; with no step
    report of its own there is nothing to anchor on, so nothing is inferred for it.
    """
    steps = route_steps(report)
    if steps is None:
        return 0
    actors, last = steps
    seen = await conn.fetchval(
        """SELECT coalesce(max((data->>'step')::numeric), -1) FROM job_events
           WHERE job_id = $1 AND kind = 'progress' AND jsonb_typeof(data->'step') = 'number'""",
        job_id,
    )
    if child and seen < 0:
        return 0
    first = max(int(seen) + 1, last + 1 - MAX_INFERRED)
    for step in range(first, last + 1):
        event = {"id": job_id, "actor": actors[step], "step": step, "steps": len(actors), "status": "success"}
        await add_event(conn, job_id, "progress", {**event, "inferred": True})
    return max(0, last + 1 - first)
