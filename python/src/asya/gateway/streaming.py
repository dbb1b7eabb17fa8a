"""``GET /jobs/{id}/stream``: Server-Sent Events of one job.

The stream subscribes to the hub *before* reading history, then alternates
"read every event after the last one sent" with "wait for a notification":
an event committed between the read and the wait has already woken the
subscription, so nothing falls in between. SSE ids are ``job_events.id``;
``Last-Event-ID`` (header, or ``?last_event_id=`` for clients that cannot set
headers) starts after it. The stream ends after the ``final`` event; it also
ends, without a final event, when this replica loses its LISTEN connection or
its database, and the client resumes from its last id (the ``retry`` field
tells it how soon). Keep-alive comments go out every ``keepalive_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asya.gateway.notify import EventHub
from asya.gateway.store import DATABASE_DOWN, FINAL_EVENT, JobStore

log = logging.getLogger("asya.gateway.streaming")

RETRY_MS = 1000
"""What the SSE ``retry`` field asks clients to wait before resuming."""
RECHECK_S = 30.0
"""Re-read the table this often even without a notification (belt and braces; NOTIFY is what wakes streams)."""


def last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


async def stream_response(
    request: Request, job_id: str, store: JobStore, hub: EventHub, keepalive_s: float
) -> Response:
    after = last_event_id(request)
    if after is None:
        return JSONResponse(
            {"error": "invalid request", "field": "Last-Event-ID", "message": "must be an event id"}, 422
        )
    if not hub.connected.is_set():
        return JSONResponse({"error": "unavailable", "message": "event feed reconnecting; retry"}, 503)
    if not await store.exists(job_id):
        return JSONResponse({"error": "not found", "message": f"no job {job_id!r}"}, 404)
    return EventSourceResponse(
        _events(job_id, after, store, hub),
        ping=keepalive_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(job_id: str, after: int, store: JobStore, hub: EventHub) -> AsyncIterator[ServerSentEvent]:
    sub = hub.subscribe(job_id)
    first = True
    try:
        while True:
            sub.changed.clear()
            try:
                rows = await store.events_after(job_id, after)
            except DATABASE_DOWN as exc:
                log.info("stream of %s ends: database unavailable (%s)", job_id, type(exc).__name__)
                return
            for row in rows:
                after = int(row["id"])
                event = ServerSentEvent(
                    data=json.dumps(row["data"], separators=(",", ":"), default=str),
                    event=row["kind"],
                    id=str(after),
                    retry=RETRY_MS if first else None,
                )
                first = False
                yield event
                if row["kind"] == FINAL_EVENT:
                    return
            if rows:
                continue  # a full page may have more behind it
            if sub.lost:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.changed.wait(), timeout=RECHECK_S)
    finally:
        hub.unsubscribe(sub)
