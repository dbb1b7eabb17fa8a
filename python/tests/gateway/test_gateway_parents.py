"""Fan-out parents complete when every child has ended; their stream counts the children.

The rule is in ``asya/gateway/parents.py``: the fan-out progress report's ``outputs`` name
the children; a child has ended when its status is terminal; a child that fans out again
ends with its own children. The concurrency test sends many children's reports at once
through two gateway replicas (each with its own pool of connections).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_helpers import Event, RunningGateway, progress_report, running_gateway, stream
from support.procs import Proc
from test_gateway_pipeline import follow, start_pipeline

from asya.gateway.settings import GatewaySettings
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(120)


async def create(c: httpx.AsyncClient) -> str:
    r = await c.post("/jobs", json={"route": {"actors": ["split", "work"]}, "payload": {"n": 1}})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def post(r: httpx.AsyncClient, kind: str, job_id: str, body: dict[str, Any]) -> None:
    resp = await r.post(f"/jobs/{job_id}/{kind}", json={"id": job_id, **body})
    assert resp.status_code == 200, resp.text


def fanned(job_id: str, children: list[str], parent_id: str | None = None) -> dict[str, Any]:
    """The progress report a sidecar sends for the step that split ``job_id`` into ``children``."""
    body = progress_report(job_id, "split", 0, 2, sent=len(children), outputs=children)
    return {**body, "parent_id": parent_id}


def final(child: str, parent: str, status: str = "succeeded") -> dict[str, Any]:
    return {"id": child, "parent_id": parent, "status": status, "actor": "happy-end"}


def counts(events: list[Event]) -> list[dict[str, int]]:
    return [e.data["children"] for e in events if "children" in e.data]


async def test_the_parent_succeeds_when_its_last_child_ends_and_streams_the_count(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        parent = await create(c)
        kids = [f"{parent}.{i}" for i in range(3)]
        async with stream(c, parent) as s:
            assert (await s.next()).kind == "created"  # type: ignore[union-attr]
            await post(r, "progress", parent, fanned(parent, kids))
            await post(r, "final", kids[0], final(kids[0], parent))
            await post(r, "final", kids[1], final(kids[1], parent, "retrying"))  # not ended: it will run again
            await post(r, "final", kids[2], final(kids[2], parent))
            await post(r, "final", kids[0], final(kids[0], parent))  # a repeated final changes nothing
            assert (await c.get(f"/jobs/{parent}")).json()["status"] == "running"  # waits for the retried one
            await post(r, "final", kids[1], final(kids[1], parent))
            events = await s.rest()
        assert [c["ended"] for c in counts(events)] == [0, 1, 2, 3]
        assert events[-1].kind == "final" and events[-1].data["status"] == "succeeded"
        assert events[-1].data["children"] == {"total": 3, "ended": 3, "succeeded": 3, "failed": 0, "cancelled": 0}
        job = (await c.get(f"/jobs/{parent}")).json()
        assert job["status"] == "succeeded" and job["result"]["children"]["succeeded"] == 3
        assert job["finished_at"] is not None and job["progress"]["children"]["ended"] == 3


async def test_a_failed_child_fails_the_parent_naming_it(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        parent = await create(c)
        kids = [f"{parent}.{i}" for i in range(3)]
        await post(r, "progress", parent, fanned(parent, kids))
        await post(r, "final", kids[1], final(kids[1], parent, "failed"))
        assert (await c.get(f"/jobs/{parent}")).json()["status"] == "running"  # two children still run
        await post(r, "final", kids[0], final(kids[0], parent))
        await post(r, "progress", kids[2], {**progress_report(kids[2], "work", 1, 2), "parent_id": parent})
        assert (await c.post(f"/jobs/{kids[2]}/cancel")).json()["status"] == "cancelled"  # ends it too
        job = (await c.get(f"/jobs/{parent}")).json()
        assert job["status"] == "failed" and job["result"] is None
        assert job["error"]["reason"] == "children_failed" and job["error"]["children"] == kids[1:]
        assert "2 of 3" in job["error"]["message"]


async def test_nested_fanout_completes_bottom_up(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        root = await create(c)
        a, b = f"{root}.0", f"{root}.1"
        b0, b1 = f"{b}.0", f"{b}.1"
        await post(r, "progress", root, fanned(root, [a, b]))
        await post(r, "final", a, final(a, root))
        await post(r, "progress", b, fanned(b, [b0, b1], parent_id=root))  # a child that splits again
        await post(r, "final", b0, final(b0, b))
        assert (await c.get(f"/jobs/{b}")).json()["status"] == "running"
        assert (await c.get(f"/jobs/{root}")).json()["status"] == "running"
        await post(r, "final", b1, final(b1, b))
        mid, top = (await c.get(f"/jobs/{b}")).json(), (await c.get(f"/jobs/{root}")).json()
        assert mid["status"] == "succeeded" and mid["origin"] == "fanout" and mid["parent_id"] == root
        assert top["status"] == "succeeded" and top["result"]["children"]["total"] == 2


async def test_children_that_end_before_the_fanout_report_arrives_still_count(gateway: RunningGateway) -> None:
    """Reports travel separately: a child's end may reach the gateway before its parent's split, and an
    injected parent's first report may be the split itself."""
    async with gateway.client() as c, gateway.reporter() as r:
        parent = f"injected-{uuid.uuid4().hex[:8]}"
        kids = [f"{parent}.{i}" for i in range(2)]
        for kid in kids:
            await post(r, "final", kid, final(kid, parent))
        await post(r, "progress", parent, fanned(parent, kids))
        job = (await c.get(f"/jobs/{parent}")).json()
        assert job["origin"] == "injected" and job["status"] == "succeeded"
        async with stream(c, parent) as s:
            events = await s.rest()
        assert [e.kind for e in events] == ["progress", "final"]
        assert events[-1].data["children"]["ended"] == 2


async def test_many_children_racing_through_two_replicas_complete_the_parent_exactly_once(
    gateway_settings: GatewaySettings,
) -> None:
    async with (
        running_gateway(gateway_settings) as a,
        running_gateway(gateway_settings) as b,
        a.client() as c,
        a.reporter() as ra,
        b.reporter() as rb,
    ):
        for injected in (False, False, True, True):
            # an injected parent's row is created by its split report, racing the children's last reports
            parent = f"injected-{uuid.uuid4().hex[:8]}" if injected else await create(c)
            kids = [f"{parent}.{i}" for i in range(60)]
            posts = [
                (rb if i % 2 else ra, "progress", kid, {**progress_report(kid, "work", 1, 2), "parent_id": parent})
                for i, kid in enumerate(kids)
            ]
            posts += [(ra if i % 2 else rb, "final", kid, final(kid, parent)) for i, kid in enumerate(kids)]
            random.shuffle(posts)
            # the split report races the children's own reports too
            posts.insert(len(posts) // 2, (ra, "progress", parent, fanned(parent, kids)))
            await asyncio.gather(*(post(rep, kind, job, body) for rep, kind, job, body in posts))
            async with stream(c, parent) as s:
                events = await s.rest()
            finals = [e for e in events if e.kind == "final"]
            assert len(finals) == 1 and finals[0].data["status"] == "succeeded", [e.data for e in finals]
            assert finals[0].data["children"]["ended"] == 60
            ended = [n["ended"] for n in counts(events)]
            assert ended == sorted(ended) and ended[-1] == 60  # the count never goes back


@pytest.mark.slow
async def test_a_fanout_through_real_actors_completes_the_parent(
    gateway: RunningGateway,
    local_transport: TransportSettings,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    suffix = uuid.uuid4().hex[:6]
    split, work = f"split-{suffix}", f"work-{suffix}"
    start_pipeline(
        gateway, local_transport, tmp_path, procs, {split: "support.handlers.fan_list", work: "support.handlers.echo"}
    )
    async with gateway.client() as c:
        job = (await c.post("/jobs", json={"route": {"actors": [split, work]}, "payload": {"n": 3}})).json()
    events = await follow(gateway, job["id"], procs)
    assert events[-1].kind == "final" and events[-1].data["status"] == "succeeded", [e.data for e in events]
    assert events[-1].data["children"] == {"total": 3, "ended": 3, "succeeded": 3, "failed": 0, "cancelled": 0}
    async with gateway.client() as c:
        for i in range(3):
            child = (await c.get(f"/jobs/{job['id']}.{i}")).json()
            assert child["status"] == "succeeded" and child["parent_id"] == job["id"]
            assert child["result"] == {"i": i}


async def test_injected_parents_split_reports_racing_their_only_childs_end_all_complete(
    gateway_settings: GatewaySettings,
) -> None:
    """The window the id lock in parents.py closes: the parent's row is being created by its split report
    while its child's last report looks for it. Many such pairs at once, so some land in it."""
    async with (
        running_gateway(gateway_settings) as a,
        running_gateway(gateway_settings) as b,
        a.client() as c,
        a.reporter() as ra,
        b.reporter() as rb,
    ):
        parents = [f"injected-{uuid.uuid4().hex[:8]}" for _ in range(80)]
        await asyncio.gather(
            *(post(ra, "progress", p, fanned(p, [f"{p}.0"])) for p in parents),
            *(post(rb, "final", f"{p}.0", final(f"{p}.0", p)) for p in parents),
        )
        statuses = [(await c.get(f"/jobs/{p}")).json()["status"] for p in parents]
        assert statuses == ["succeeded"] * len(parents)
