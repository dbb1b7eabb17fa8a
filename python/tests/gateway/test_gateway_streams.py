"""Reports become job state and SSE events: history, live, final, resume, replicas, a database restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import httpx
import pytest
from fixtures.postgres import PostgresServer
from gateway_helpers import (
    Event,
    RunningGateway,
    SSEReader,
    eventually,
    progress_report,
    running_gateway,
    settings,
    stream,
    until,
)

from asya.gateway.settings import GatewaySettings
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(90)

BODY: dict[str, Any] = {"route": {"actors": ["a", "b", "c"]}, "payload": {"n": 1}}


async def create(c: httpx.AsyncClient) -> str:
    r = await c.post("/jobs", json=BODY)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def report(r: httpx.AsyncClient, kind: str, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await r.post(f"/jobs/{job_id}/{kind}", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_reports_update_the_job_and_stream_history_then_live_then_final(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await create(c)
        await report(r, "progress", job, progress_report(job, "a", 0, 3))
        assert (await c.get(f"/jobs/{job}")).json()["status"] == "running"
        async with stream(c, job) as s:
            history = [await s.next(), await s.next()]
            assert [e.kind for e in history if e] == ["created", "progress"]
            assert s.retry_ms == 1000
            # live: a report sent while the client waits arrives on the open stream
            await report(r, "progress", job, progress_report(job, "b", 1, 3))
            live = await s.next()
            assert live is not None and live.kind == "progress" and live.data["actor"] == "b"
            await report(r, "final", job, {"id": job, "status": "retrying", "actor": "c", "attempt": 2})
            await report(r, "final", job, {"id": job, "status": "succeeded", "actor": "happy-end", "result": {"ok": 1}})
            rest = await s.rest()
            assert [e.kind for e in rest] == ["retrying", "final"]
            assert rest[-1].data["result"] == {"ok": 1}
            ids = [e.id for e in [*history, live, *rest] if e]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
        got = (await c.get(f"/jobs/{job}")).json()
        assert got["status"] == "succeeded" and got["result"] == {"ok": 1} and got["finished_at"]
        # an end actor that crashed before its ack reports again: nothing changes, no event is added
        again = await report(r, "final", job, {"id": job, "status": "failed", "reason": "x"})
        assert again == {"id": job, "applied": False, "status": "succeeded"}
        late = await report(r, "progress", job, progress_report(job, "c", 2, 3))
        assert late["applied"] is False
        async with stream(c, job) as s:
            replay = await s.rest()
        assert [e.id for e in replay] == ids  # the finished job's whole history, then the stream ends


async def test_last_event_id_resumes_without_gaps_or_repeats(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await create(c)
        for step in range(5):
            await report(r, "progress", job, progress_report(job, "a", step, 10))
        async with stream(c, job) as s:
            first = [await s.next() for _ in range(3)]
        seen = [e for e in first if e]
        last = seen[-1].id
        for step in range(5, 8):
            await report(r, "progress", job, progress_report(job, "a", step, 10))
        await report(r, "final", job, {"id": job, "status": "failed", "reason": "boom"})
        async with stream(c, job, last_event_id=last) as s:
            resumed = await s.rest()
        assert resumed[0].id > last
        everything = seen + resumed
        steps = [e.data.get("step") for e in everything if e.kind == "progress"]
        assert steps == list(range(8))
        assert [e.kind for e in everything].count("final") == 1
        assert len({e.id for e in everything}) == len(everything)
        # the query-parameter form resumes the same way (for clients that cannot set headers)
        resp = await c.get(f"/jobs/{job}/stream", params={"last_event_id": str(resumed[-2].id)})
        assert resp.text.count("event: final") == 1 and resp.text.count("event: progress") == 0
        bad = await c.get(f"/jobs/{job}/stream", headers={"Last-Event-ID": "nope"})
        assert bad.status_code == 422
        assert (await c.get("/jobs/nosuch/stream")).status_code == 404


async def test_unknown_ids_become_injected_jobs_and_fanout_children_link_to_their_parent(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        parent = await create(c)
        # an id with a slash, as producers outside the gateway may choose (the reporter percent-encodes it)
        outsider = "batch/7"
        await report(r, "progress", "batch%2F7", progress_report(outsider, "a", 0, 1))
        injected = (await c.get("/jobs/batch%2F7")).json()
        assert injected["id"] == outsider and injected["origin"] == "injected" and injected["status"] == "running"
        child = f"{parent}-0"
        await report(r, "progress", child, {**progress_report(child, "b", 1, 3), "parent_id": parent})
        got = (await c.get(f"/jobs/{child}")).json()
        assert got["origin"] == "fanout" and got["parent_id"] == parent
        orphan = "orphan-1"
        await report(r, "final", orphan, {"id": orphan, "parent_id": "never-seen", "status": "succeeded"})
        got = (await c.get(f"/jobs/{orphan}")).json()
        assert got["origin"] == "injected" and got["parent_id"] == "never-seen" and got["status"] == "succeeded"
        bad = await r.post(f"/jobs/{orphan}/final", json={"status": "done"})
        assert bad.status_code == 422 and bad.json()["field"] == "status"


async def test_cancel_ends_the_stream_and_later_reports_change_nothing(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await create(c)
        async with stream(c, job) as s:
            assert (await s.next()).kind == "created"  # type: ignore[union-attr]
            cancelled = await c.post(f"/jobs/{job}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            final = await s.rest()
            assert [(e.kind, e.data["status"]) for e in final] == [("final", "cancelled")]
        assert (await report(r, "final", job, {"id": job, "status": "succeeded"}))["applied"] is False
        again = await c.post(f"/jobs/{job}/cancel")
        assert again.json()["status"] == "cancelled"
        assert (await c.get(f"/jobs/{job}")).json()["status"] == "cancelled"


async def test_keepalives_flow_while_the_job_is_quiet(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        job = await create(c)
        async with stream(c, job) as s:
            assert (await s.next()).kind == "created"  # type: ignore[union-attr]
            with pytest.raises(TimeoutError):
                await s.next(timeout=2.5)  # keepalive_s is 1 in tests: two or more comments, no event
            assert s.keepalives >= 2


async def test_a_job_created_on_one_replica_streams_live_from_another(gateway_settings: GatewaySettings) -> None:
    async with (
        running_gateway(gateway_settings) as a,
        running_gateway(gateway_settings) as b,
        a.client() as ca,
        b.client() as cb,
        a.reporter() as ra,
    ):
        job = await create(ca)
        async with stream(cb, job) as s:
            assert (await s.next()).kind == "created"  # type: ignore[union-attr]
            # the report goes to A; only NOTIFY through PostgreSQL can wake B's stream
            await report(ra, "progress", job, progress_report(job, "a", 0, 3))
            live = await s.next(timeout=3)
            assert live is not None and live.kind == "progress"
            await report(ra, "final", job, {"id": job, "status": "succeeded"})
            assert [e.kind for e in await s.rest()] == ["final"]


async def test_a_postgres_restart_mid_stream_loses_no_event(
    gateway: RunningGateway, postgres_server: PostgresServer
) -> None:
    if not postgres_server.can_restart:
        pytest.skip("external PostgreSQL")
    async with gateway.client() as c, gateway.reporter() as r:
        job = await create(c)
        await report(r, "progress", job, progress_report(job, "a", 0, 6))
        received: list[Event] = []
        async with stream(c, job) as s:
            received += [e for e in (await s.next(), await s.next()) if e]
            restart = asyncio.create_task(asyncio.to_thread(postgres_server.restart))
            # the server ends the stream when its LISTEN connection drops
            tail = await s.rest(timeout=30)
            received += tail
            await restart
        # reports keep coming once the database is back (the reporter retries nothing: send them after)
        for step in range(1, 6):
            await report(r, "progress", job, progress_report(job, "a", step, 6))
        await report(r, "final", job, {"id": job, "status": "succeeded"})
        received += await resume(c, job, received[-1].id)
        steps = [e.data["step"] for e in received if e.kind == "progress"]
        assert steps == list(range(6))
        assert received[0].kind == "created" and received[-1].kind == "final"
        assert len({e.id for e in received}) == len(received)


async def resume(c: httpx.AsyncClient, job: str, last: int, deadline_s: float = 30) -> list[Event]:
    """What an SSE client does: reconnect with Last-Event-ID until the final event, retrying 503s."""
    out: list[Event] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        try:
            async with c.stream("GET", f"/jobs/{job}/stream", headers={"Last-Event-ID": str(last)}) as resp:
                if resp.status_code != 200:
                    await asyncio.sleep(0.2)
                    continue
                reader = SSEReader(resp)
                while (event := await reader.next(timeout=deadline_s)) is not None:
                    out.append(event)
                    last = event.id
                    if event.kind == "final":
                        return out
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"no final event within {deadline_s}s; got {[e.kind for e in out]}")


async def test_concurrent_reports_stream_once_each_in_id_order(gateway: RunningGateway) -> None:
    async with gateway.client() as c, gateway.reporter() as r:
        job = await create(c)
        async with stream(c, job) as s:
            assert (await s.next()).kind == "created"  # type: ignore[union-attr]
            # reports racing on one job (parallel sidecar replicas): the row lock orders their ids
            await asyncio.gather(*(report(r, "progress", job, progress_report(job, "a", i, 40)) for i in range(40)))
            await report(r, "final", job, {"id": job, "status": "succeeded"})
            live = await s.rest()
        assert sorted(e.data["step"] for e in live if e.kind == "progress") == list(range(40))
        assert [e.id for e in live] == sorted({e.id for e in live})
        async with stream(c, job) as s:
            replay = await s.rest()
        assert [e.id for e in replay[1:]] == [e.id for e in live]  # what was live is what is stored


async def test_a_gateway_restart_loses_no_job_state(gateway_settings: GatewaySettings) -> None:
    async with running_gateway(gateway_settings) as a, a.client() as c, a.reporter() as r:
        job = await create(c)
        await report(r, "progress", job, progress_report(job, "a", 0, 3))
        async with stream(c, job) as s:
            before = [await s.next(), await s.next()]
    async with running_gateway(gateway_settings) as b, b.client() as c, b.reporter() as r:
        got = (await c.get(f"/jobs/{job}")).json()
        assert got["status"] == "running" and got["progress"]["actor"] == "a"
        await report(r, "final", job, {"id": job, "status": "succeeded"})
        last = before[-1]
        assert last is not None
        async with stream(c, job, last_event_id=last.id) as s:
            assert [e.kind for e in await s.rest()] == ["final"]


async def test_a_database_outage_is_503_and_the_gateway_recovers_on_its_own(
    gateway: RunningGateway, postgres_server: PostgresServer
) -> None:
    if not postgres_server.can_restart:
        pytest.skip("external PostgreSQL")
    async with gateway.client() as c, gateway.reporter() as r:
        job = await create(c)
        await asyncio.to_thread(postgres_server.stop)
        try:
            await eventually(lambda: ready(c, 503), "readyz says 503 while the database is down")
            for resp in (
                await c.post("/jobs", json=BODY),
                await c.get(f"/jobs/{job}"),
                await r.post(f"/jobs/{job}/progress", json=progress_report(job, "a", 0, 3)),
            ):
                assert resp.status_code == 503 and resp.headers["retry-after"] == "1", resp.text
            assert (await c.get(f"/jobs/{job}/stream")).status_code == 503
        finally:
            await asyncio.to_thread(postgres_server.start)
        await eventually(lambda: ready(c, 200), "readyz back to 200", timeout=20)
        await report(r, "final", job, {"id": job, "status": "succeeded"})
        async with stream(c, job) as s:
            assert [e.kind for e in await s.rest()] == ["created", "final"]


async def ready(c: httpx.AsyncClient, status: int) -> bool:
    return (await c.get("/readyz")).status_code == status


async def test_a_frozen_listen_connection_is_dropped_and_streams_resume(
    gateway_dsn: str, local_transport: TransportSettings, postgres_server: PostgresServer
) -> None:
    if not postgres_server.can_restart:
        pytest.skip("external PostgreSQL: its backends are not ours to freeze")
    gateway_settings = settings(gateway_dsn, local_transport, listen_check_s=0.5)
    async with running_gateway(gateway_settings) as gw, gw.client() as c, gw.reporter() as r:
        job = await create(c)
        hub = gw.server.config.app.state.gateway.hub
        backend = hub._conn.get_server_pid()
        async with stream(c, job) as s:
            first = await s.next()
            assert first is not None
            # a frozen server backend: the socket stays open, nothing ever answers (like a partition)
            os.kill(backend, signal.SIGSTOP)
            try:
                assert await s.rest(timeout=10) == []  # the watchdog drops it and the stream ends
            finally:
                os.kill(backend, signal.SIGCONT)
        await until(hub.connected.is_set, "the hub reconnected")
        assert hub._conn.get_server_pid() != backend
        await report(r, "progress", job, progress_report(job, "a", 0, 1))
        await report(r, "final", job, {"id": job, "status": "succeeded"})
        assert [e.kind for e in await resume(c, job, first.id)] == ["progress", "final"]


async def test_clients_that_disconnect_leave_no_subscription_behind(gateway: RunningGateway) -> None:
    hub = gateway.server.config.app.state.gateway.hub
    async with gateway.client() as c:
        job = await create(c)
        for _ in range(3):
            async with contextlib.AsyncExitStack() as stack:
                readers = [await stack.enter_async_context(stream(c, job)) for _ in range(10)]
                for reader in readers:
                    assert (await reader.next()).kind == "created"  # type: ignore[union-attr]
                assert hub.subscribers == 10
            # the clients hung up mid-stream (no final event): sse-starlette notices and our generator unsubscribes
            await until(lambda: hub.subscribers == 0, "every subscription released after the disconnects")
