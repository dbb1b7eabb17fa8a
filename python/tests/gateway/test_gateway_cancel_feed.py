"""The gateway's side of cancellation: the feed sidecars poll and what it does with their drop reports."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from gateway_helpers import RunningGateway, stream

pytestmark = pytest.mark.timeout(60)

ROUTE = {"route": {"actors": ["a", "b"]}, "payload": {"n": 1}}


async def new_job(gw: RunningGateway) -> str:
    async with gw.client() as c:
        resp = await c.post("/jobs", json=ROUTE)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])


async def feed(gw: RunningGateway, **params: Any) -> dict[str, Any]:
    async with gw.reporter() as r:
        resp = await r.get("/internal/cancellations", params=params)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body


async def test_the_feed_pages_through_cancellations_and_its_cursor_moves_past_them(gateway: RunningGateway) -> None:
    before = await feed(gateway)
    assert before == {"cancelled": [], "cursor": "0", "more": False}
    ids = [await new_job(gateway) for _ in range(5)]
    await new_job(gateway)  # never cancelled: must not appear
    async with gateway.client() as c:
        for job_id in ids:
            assert (await c.post(f"/jobs/{job_id}/cancel")).json()["status"] == "cancelled"
    seen: list[str] = []
    cursor = before["cursor"]
    pages = 0
    while True:
        page = await feed(gateway, after=cursor, limit=2)
        pages += 1
        seen += page["cancelled"]
        assert int(page["cursor"]) >= int(cursor)
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert set(seen) == set(ids) and pages >= 3
    # without a cursor the feed starts an hour back: the same ids, in one page
    assert set((await feed(gateway))["cancelled"]) == set(ids)
    # a cancellation after the cursor is new on the next poll
    late = await new_job(gateway)
    async with gateway.client() as c:
        await c.post(f"/jobs/{late}/cancel")
    page = await feed(gateway, after=cursor)
    assert late in page["cancelled"] and int(page["cursor"]) > int(cursor)


async def test_the_feed_rereads_recent_cancellations_so_a_late_commit_is_not_skipped(
    gateway: RunningGateway, gateway_dsn: str
) -> None:
    job_id = await new_job(gateway)
    async with gateway.client() as c:
        await c.post(f"/jobs/{job_id}/cancel")
    cursor = (await feed(gateway))["cursor"]
    # a poller already past this id (it read a higher one that committed first) still gets it for a while
    assert job_id in (await feed(gateway, after=cursor))["cancelled"]
    conn = await asyncpg.connect(gateway_dsn)
    try:
        await conn.execute("UPDATE job_events SET created_at = now() - interval '1 minute' WHERE job_id = $1", job_id)
    finally:
        await conn.close()
    assert job_id not in (await feed(gateway, after=cursor))["cancelled"]  # the re-read window is short
    # the planner may scan a tiny table; with scans discouraged it must find migration 2's index
    assert "job_events_cancelled_id" in await _plan_with_seqscan_off(gateway_dsn), "migration 2's index unused"


async def _plan_with_seqscan_off(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch(
            "EXPLAIN SELECT id, job_id FROM job_events WHERE kind = 'final' AND data->>'status' = 'cancelled' "
            "AND id > 0 ORDER BY id LIMIT 1000"
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def test_the_feed_takes_only_the_report_token_and_names_a_bad_cursor(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        assert (await c.get("/internal/cancellations")).status_code == 401
    async with gateway.reporter() as r:
        for params, field in (({"after": "x"}, "after"), ({"after": "-1"}, "after"), ({"limit": "0"}, "limit")):
            resp = await r.get("/internal/cancellations", params=params)
            assert resp.status_code == 422 and resp.json()["field"] == field, resp.text


async def test_a_drop_report_is_recorded_on_the_cancelled_job_and_cancels_a_running_child(
    gateway: RunningGateway,
) -> None:
    parent = await new_job(gateway)
    async with gateway.client() as c:
        await c.post(f"/jobs/{parent}/cancel")
    drop = {"parent_id": None, "actor": "b", "step": 1, "steps": 2, "status": "cancelled", "stage": "before_call"}
    child = f"{parent}.0"
    async with gateway.reporter() as r:
        assert (await r.post(f"/jobs/{parent}/progress", json={**drop, "id": parent})).json()["applied"] is True
        # a fan-out child the gateway never saw, dropped because its parent is cancelled
        body = {**drop, "id": child, "parent_id": parent}
        assert (await r.post(f"/jobs/{child}/progress", json=body)).json()["status"] == "cancelled"
    async with gateway.client() as c:
        job = (await c.get(f"/jobs/{parent}")).json()
        assert job["status"] == "cancelled" and job["progress"]["actor"] == "b"
        assert job["progress"]["status"] == "cancelled"
        kid = (await c.get(f"/jobs/{child}")).json()
        assert kid["status"] == "cancelled" and kid["origin"] == "fanout"
        async with stream(c, parent) as s:
            events = await s.rest()
        final_id = events[-1].id
        assert [e.kind for e in events][-1] == "final"
        # the drop comes after the final event: a client resuming from it sees where the envelope stopped
        async with stream(c, parent, last_event_id=final_id) as s:
            dropped = await s.next()
        assert dropped is not None and dropped.kind == "dropped" and dropped.data["actor"] == "b"
    assert child in (await feed(gateway))["cancelled"]  # the child's own id is in the feed too
