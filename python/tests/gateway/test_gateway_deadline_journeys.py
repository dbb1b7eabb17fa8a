"""A job deadline (``x-asya-deadline``) through real sidecars, runtimes and crew, reported to a real gateway.

Envelopes are injected straight into the first actor's queue (the gateway makes
them visible as jobs on their first report), so these tests hold whatever shape
the gateway's own deadline fields take.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import RunningGateway, eventually, running_gateway, settings, stream
from journey_helpers import Journey, dead_letter, inject, until

from asya import transports
from asya.contracts import headers as h
from asya.contracts import metrics as names

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture
async def journey(
    gateway_dsn: str, local_transport: transports.TransportSettings, tmp_path: Path
) -> AsyncIterator[Journey]:
    env = {"ASYA_TRANSPORT": "local", "ASYA_TRANSPORT_URL": local_transport.url}
    async with running_gateway(settings(gateway_dsn, local_transport)) as gw:
        j = Journey(gw, env, tmp_path)
        try:
            yield j
        except BaseException:
            print(j.logs())
            raise
        finally:
            j.stop()


@pytest.fixture
async def bus(local_transport: transports.TransportSettings) -> AsyncIterator[transports.Transport]:
    transport = transports.create(local_transport)
    await transport.connect()
    yield transport
    await transport.close()


async def final_of(gw: RunningGateway, job_id: str) -> list[Any]:
    async def known() -> bool:
        async with gw.client() as c:
            return (await c.get(f"/jobs/{job_id}")).status_code == 200

    await eventually(known, f"job {job_id} visible at the gateway", 60)
    async with gw.client() as c, stream(c, job_id) as s:
        return await s.rest(timeout=60)


async def test_a_deadline_reached_mid_pipeline_fails_the_job_and_is_never_retried(
    journey: Journey, bus: transports.Transport, tmp_path: Path
) -> None:
    first, second, third = journey.name("prep"), journey.name("slow"), journey.name("last")
    journey.start_actor(first, "echo")
    journey.start_actor(second, "wait_for_file")  # its gate never opens: it runs past the deadline
    journey.start_actor(third, "echo")
    # a generous budget that a deadline must override
    journey.start_crew(ASYA_RETRY_MAX_ATTEMPTS=5, ASYA_RETRY_BACKOFF_BASE_S=0.05, ASYA_RETRY_BACKOFF_MAX_S=0.1)
    started = tmp_path / "started"
    job_id = uuid.uuid4().hex
    deadline = time.time() + 8
    payload = {"n": 1, "started": str(started), "gate": str(tmp_path / "never")}
    env = {"id": job_id, "route": {"actors": [first, second, third], "current": 0}, "payload": payload}
    await inject(bus, first, {**env, "headers": {h.DEADLINE: deadline, h.RETRY_MAX: 5}})
    await until(started.exists, "step 2's handler running", 60)
    events = await final_of(journey.gateway, job_id)
    ended = time.time()
    kinds = [e.kind for e in events]
    assert kinds[-1] == "final" and "retrying" not in kinds, kinds
    final = events[-1].data
    assert final["status"] == "failed" and final["reason"] == "deadline_exceeded", final
    assert deadline <= ended < deadline + 10, (deadline, ended)  # cut at the deadline, not the 30 s timeout
    [stored] = journey.stored(job_id)
    record = dead_letter(stored)
    assert record["headers"][h.DLQ_REASON] == "deadline_exceeded"
    assert h.RETRY_ATTEMPT not in record["headers"]  # no second attempt was ever scheduled
    details = record["payload"]["details"]
    assert record["payload"]["error"] == "deadline_exceeded" and details["actor"] == second
    assert details["handler_called"] is True and details["deadline"] == pytest.approx(deadline)
    assert "job deadline" in details["message"] and second in details["message"]
    assert journey.metric(second, names.SIDECAR_RUNTIME_ERRORS, code="deadline_exceeded") == 1
    assert journey.metric(third, names.SIDECAR_MESSAGES_RECEIVED) == 0
    async with journey.gateway.client() as c:
        job = (await c.get(f"/jobs/{job_id}")).json()
    assert job["status"] == "failed" and job["error"]["reason"] == "deadline_exceeded"


async def test_an_envelope_past_its_deadline_never_reaches_the_runtime(
    journey: Journey, bus: transports.Transport, tmp_path: Path
) -> None:
    actor = journey.name("guard")
    journey.start_actor(actor, "wait_for_file")
    journey.start_crew(ASYA_RETRY_MAX_ATTEMPTS=5, ASYA_RETRY_BACKOFF_BASE_S=0.05, ASYA_RETRY_BACKOFF_MAX_S=0.1)
    started, gate = tmp_path / "started", tmp_path / "gate"
    gate.write_text("open")  # a call would return at once, leaving `started` behind
    payload = {"n": 1, "started": str(started), "gate": str(gate)}
    job_id = uuid.uuid4().hex
    deadline = time.time() - 1
    env = {"id": job_id, "route": {"actors": [actor], "current": 0}, "headers": {h.DEADLINE: deadline}}
    await inject(bus, actor, {**env, "payload": payload})
    events = await final_of(journey.gateway, job_id)
    assert events[-1].data["status"] == "failed" and events[-1].data["reason"] == "deadline_exceeded"
    assert "retrying" not in [e.kind for e in events]
    assert not started.exists()
    [stored] = journey.stored(job_id)
    details = dead_letter(stored)["payload"]["details"]
    assert details["handler_called"] is False and "not sent to the handler" in details["message"]
    assert journey.metric(actor, names.SIDECAR_PROCESSING_SECONDS + "_count") == 0  # no runtime round trip


async def test_an_unreadable_deadline_goes_to_error_end_naming_the_header(
    journey: Journey, bus: transports.Transport, tmp_path: Path
) -> None:
    actor = journey.name("guard")
    journey.start_actor(actor, "echo")
    journey.start_crew()
    job_id = uuid.uuid4().hex
    env = {"id": job_id, "route": {"actors": [actor], "current": 0}, "headers": {h.DEADLINE: "tomorrow"}}
    await inject(bus, actor, {**env, "payload": {"n": 1}})
    events = await final_of(journey.gateway, job_id)
    assert events[-1].data["status"] == "failed" and "retrying" not in [e.kind for e in events]
    [stored] = journey.stored(job_id)
    details = dead_letter(stored)["payload"]["details"]
    assert details["field"] == f"headers.{h.DEADLINE}" and "'tomorrow'" in details["message"]
