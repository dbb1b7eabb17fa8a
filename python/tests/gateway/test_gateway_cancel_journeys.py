"""Cancelling a job stops its envelopes at the next hop: real sidecars, runtimes and crew, a real gateway.

The sidecars learn about cancellations from the gateway's feed (polled every
0.5 s), never by asking per message. What each test reads is the sidecars' own
``/metrics`` (drops by stage, messages received) and the gateway's job and
stream, so "never reached step 3" is a count, not a timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import RunningGateway, eventually, running_gateway, settings, stream
from journey_helpers import Journey, inject, until

from asya import transports
from asya.contracts import metrics as names

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

LATENCY_BOUND_S = 2.0


@pytest.fixture(params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def transport_settings(request: pytest.FixtureRequest, tmp_path: Path) -> transports.TransportSettings:
    if request.param == "local":
        return transports.TransportSettings(kind="local", url=str(tmp_path / "queues"))
    server = request.getfixturevalue("rabbitmq_server")
    return transports.TransportSettings(kind="rabbitmq", url=server.url)


@pytest.fixture
async def journey(
    gateway_dsn: str, transport_settings: transports.TransportSettings, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Journey]:
    env = {"ASYA_TRANSPORT": transport_settings.kind, "ASYA_TRANSPORT_URL": transport_settings.url}
    async with running_gateway(settings(gateway_dsn, transport_settings)) as gw:
        j = Journey(gw, env, tmp_path)
        try:
            yield j
        finally:
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(j.logs())
            j.stop()


async def job_of(gw: RunningGateway, job_id: str) -> dict[str, Any]:
    async with gw.client() as c:
        resp = await c.get(f"/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        return job


async def test_a_job_cancelled_mid_pipeline_stops_at_the_next_hop(journey: Journey, tmp_path: Path) -> None:
    first, second, third = journey.name("prep"), journey.name("slow"), journey.name("last")
    journey.start_actor(first, "echo")
    journey.start_actor(second, "wait_for_file")
    journey.start_actor(third, "echo")
    journey.start_crew()
    await journey.wait_consuming(first, second, third)  # on RabbitMQ the gateway's publish needs the queue
    started, gate = tmp_path / "started", tmp_path / "gate"
    body = {
        "route": {"actors": [first, second, third]},
        "payload": {"n": 1, "started": str(started), "gate": str(gate)},
    }
    async with journey.gateway.client() as c:
        job_id = (await c.post("/jobs", json=body)).json()["id"]
    await until(started.exists, "step 2's handler running", 60)

    async def step_one_reported() -> bool:
        return ((await job_of(journey.gateway, job_id))["progress"] or {}).get("actor") == first

    await eventually(step_one_reported, "step 1's progress at the gateway", 15)  # reports are asynchronous

    t0 = time.monotonic()
    async with journey.gateway.client() as c:
        assert (await c.post(f"/jobs/{job_id}/cancel")).json()["status"] == "cancelled"
    await journey.wait_metric(second, names.SIDECAR_CANCELLED_KNOWN, lambda v: v >= 1, "step 2's sidecar learns", 10)
    latency = time.monotonic() - t0
    print(f"cancel -> sidecar knows: {latency * 1000:.0f} ms")
    assert latency <= LATENCY_BOUND_S

    gate.write_text("open")  # the running handler is not interrupted: it finishes, its output is dropped
    dropped = {"stage": "outputs"}
    await journey.wait_metric(second, names.SIDECAR_CANCELLED_DROPPED, lambda v: v == 1, "the drop", **dropped)
    assert journey.metric(third, names.SIDECAR_MESSAGES_RECEIVED) == 0
    assert journey.metric(second, names.SIDECAR_OUTPUTS_PUBLISHED, destination=third) == 0

    async def drop_recorded() -> bool:
        return (await job_of(journey.gateway, job_id))["progress"]["actor"] == second

    await eventually(drop_recorded, "the drop report at the gateway", 15)
    job = await job_of(journey.gateway, job_id)
    assert job["status"] == "cancelled" and job["progress"]["status"] == "cancelled"
    assert journey.stored(job_id) == []  # happy-end never stored it (nor error-end)
    async with journey.gateway.client() as c:
        async with stream(c, job_id) as s:
            events = await s.rest()
        assert [e.kind for e in events] == ["created", "progress", "final"], events
        assert events[1].data["actor"] == first and events[-1].data["status"] == "cancelled"
        async with stream(c, job_id, last_event_id=events[-1].id) as s:
            drop = await s.next()
    assert drop is not None and drop.kind == "dropped"
    assert drop.data["actor"] == second and drop.data["stage"] == "outputs" and second in drop.data["message"]


@pytest.mark.parametrize("transport_settings", ["local"], indirect=True)
async def test_an_already_cancelled_jobs_envelopes_never_reach_the_runtime(
    journey: Journey, tmp_path: Path, transport_settings: transports.TransportSettings
) -> None:
    actor = journey.name("guard")
    started, gate = tmp_path / "started", tmp_path / "gate"
    gate.write_text("open")  # were the handler called, it would return at once and leave `started` behind
    payload = {"n": 1, "started": str(started), "gate": str(gate)}
    async with journey.gateway.client() as c:
        job_id = (await c.post("/jobs", json={"route": {"actors": [actor]}, "payload": payload})).json()["id"]
        assert (await c.post(f"/jobs/{job_id}/cancel")).json()["status"] == "cancelled"
    # the job's envelope waits in the queue; the sidecar starting now loads the cancellations first
    journey.start_actor(actor, "wait_for_file")
    before = {"stage": "before_call"}
    await journey.wait_metric(actor, names.SIDECAR_CANCELLED_DROPPED, lambda v: v == 1, "the drop", **before)
    # a fan-out child of the cancelled job injected straight into the queue goes the same way
    child = f"{job_id}.3"
    bus = transports.create(transport_settings)
    await bus.connect()
    try:
        env = {"id": child, "parent_id": job_id, "route": {"actors": [actor], "current": 0}, "payload": payload}
        await inject(bus, actor, env)
        # and an unrelated envelope right behind it still runs: only the cancelled job's are dropped
        other = uuid.uuid4().hex
        await inject(bus, actor, {"id": other, "route": {"actors": [actor], "current": 0}, "payload": payload})
    finally:
        await bus.close()
    await journey.wait_metric(actor, names.SIDECAR_CANCELLED_DROPPED, lambda v: v == 2, "the child's drop", **before)
    await journey.wait_metric(actor, names.SIDECAR_MESSAGES_PROCESSED, bool, "other ran", outcome="success")
    assert started.exists()  # it did reach the handler: only the cancelled job's envelopes were kept from it
    assert journey.metric(actor, names.SIDECAR_MESSAGES_PROCESSED, outcome="success") == 1

    async def child_cancelled() -> bool:
        async with journey.gateway.client() as c:
            resp = await c.get(f"/jobs/{child}")
            return resp.status_code == 200 and resp.json()["status"] == "cancelled"

    await eventually(child_cancelled, "the dropped child's job cancelled", 15)
    assert (await job_of(journey.gateway, child))["origin"] == "fanout"
    assert (await job_of(journey.gateway, job_id))["progress"]["actor"] == actor
