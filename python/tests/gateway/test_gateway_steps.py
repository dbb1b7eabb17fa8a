"""A final report that overtakes the last step reports: the stream still shows every step, in order.

Progress reports leave the sidecars in the background; happy-end's final report
is sent before its ack. Here the reports are posted in the order a fast pipeline
can produce, by hand with the report token, as the sidecars and happy-end would.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gateway_helpers import RunningGateway, progress_report, stream

pytestmark = pytest.mark.timeout(90)

ACTORS = ["prep", "infer", "post"]


async def _post(r: httpx.AsyncClient, kind: str, job: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await r.post(f"/jobs/{job}/{kind}", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _final(job: str, current: int = 2, **extra: Any) -> dict[str, Any]:
    route = {"actors": ACTORS, "current": current}
    return {"id": job, "status": "succeeded", "actor": "post", "route": route, "result": {"ok": 1}, **extra}


async def _create(c: httpx.AsyncClient) -> str:
    resp = await c.post("/jobs", json={"route": {"actors": ACTORS}, "payload": {"n": 1}})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_steps_whose_reports_are_late_are_inferred_before_the_final_event(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await _create(c)
        await _post(r, "progress", job, progress_report(job, "prep", 0, 3))
        await _post(r, "final", job, _final(job))
        late = await _post(r, "progress", job, progress_report(job, "post", 2, 3))
        assert late["applied"] is False, "an ended job takes no more events"
        async with stream(c, job) as s:
            events = await s.rest()
    kinds = [(e.kind, e.data.get("step"), e.data.get("inferred", False)) for e in events]
    assert kinds == [
        ("created", None, False),
        ("progress", 0, False),
        ("progress", 1, True),
        ("progress", 2, True),
        ("final", None, False),
    ]
    assert [e.data["actor"] for e in events[2:4]] == ["infer", "post"]


async def test_a_pipeline_that_ended_early_is_filled_in_only_up_to_where_it_ended(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await _create(c)
        await _post(r, "final", job, _final(job, current=1))
        async with stream(c, job) as s:
            events = await s.rest()
    assert [(e.kind, e.data.get("step")) for e in events] == [
        ("created", None),
        ("progress", 0),
        ("progress", 1),
        ("final", None),
    ]


async def test_nothing_is_inferred_when_every_step_reported_or_for_a_child_without_reports(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await _create(c)
        for step, actor in enumerate(ACTORS):
            await _post(r, "progress", job, progress_report(job, actor, step, 3))
        await _post(r, "final", job, _final(job))
        # a fan-out child starts after its parent's split step, which its route does not say
        await _post(r, "final", f"{job}.0", {**_final(f"{job}.0"), "parent_id": job})
        for one in (job, f"{job}.0"):
            async with stream(c, one) as s:
                events = await s.rest()
            assert not [e for e in events if e.data.get("inferred")], [e.data for e in events]
