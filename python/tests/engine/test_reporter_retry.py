"""Reports to a gateway that is down for a while: retried in the background, dropped (and counted) only past a bound.

A real sidecar + runtime on the local transport reports to a port where the
real gateway (on real PostgreSQL) is started only later; what the sidecar did is
read from its ``/metrics``. The ordering test drives the engine's ``Reporter``
in this process against the same real gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fixtures.postgres import PostgresServer
from gateway.gateway_helpers import REPORT_TOKEN, RunningGateway, settings, stream, until
from support.procs import Proc, free_port, scrape, start_runtime, start_sidecar

from asya import transports
from asya.contracts import encode_envelope, queue_name
from asya.contracts import metrics as names
from asya.engine.reporting import Reporter
from asya.gateway.app import create_app
from asya.gateway.migrations import migrate

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
async def dsn(postgres_server: PostgresServer) -> str:
    fresh = await asyncio.to_thread(postgres_server.fresh_database)
    await migrate(fresh)
    return fresh


@pytest.fixture
def local(tmp_path: Path) -> transports.TransportSettings:
    return transports.TransportSettings(kind="local", url=str(tmp_path / "queues"))


@contextlib.asynccontextmanager
async def gateway_on(port: int, dsn: str, transport: transports.TransportSettings) -> AsyncIterator[RunningGateway]:
    """The real gateway on a port chosen before it existed (the reporters already point at it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(create_app(settings(dsn, transport)), log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "gateway started")
        yield RunningGateway(url=f"http://127.0.0.1:{port}", server=server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


def sample(port: int, name: str, **labels: str) -> float:
    try:
        samples = scrape(port)
    except OSError:
        return 0.0
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for key, value in samples.items():  # the actor label is first: match the rest of the set
        if key.startswith(name + "{") and key.endswith(inner + "}"):
            total += value
    return total


@contextlib.asynccontextmanager
async def sidecar(tmp_path: Path, local: transports.TransportSettings, gw_port: int, **env: Any) -> AsyncIterator[Any]:
    actor = f"rep-{uuid.uuid4().hex[:6]}"
    sock = tmp_path / f"sock-{actor}"
    sock.mkdir()
    port = free_port()
    procs: list[Proc] = [start_runtime("support.handlers.echo", sock, tmp_path)]
    transport_env = {"ASYA_TRANSPORT": "local", "ASYA_TRANSPORT_URL": local.url}
    gateway_env = {"ASYA_GATEWAY_URL": f"http://127.0.0.1:{gw_port}", "ASYA_GATEWAY_TOKEN": REPORT_TOKEN}
    procs.append(start_sidecar(actor, sock, tmp_path, transport_env, ASYA_HTTP_PORT=port, **gateway_env, **env))
    bus = transports.create(local)
    await bus.connect()
    try:

        async def send(count: int) -> list[str]:
            ids = [uuid.uuid4().hex for _ in range(count)]
            await bus.ensure_queue(queue_name(actor))
            for i in ids:
                env = {"id": i, "route": {"actors": [actor], "current": 0}, "payload": {"n": 1}}
                await bus.publish(queue_name(actor), encode_envelope(env))
            return ids

        yield port, send, procs
    finally:
        await bus.close()
        for proc in procs:
            proc.stop()


async def jobs_known(gw: RunningGateway, ids: list[str]) -> list[str]:
    async with gw.client() as c:
        return [i for i in ids if (await c.get(f"/jobs/{i}")).status_code == 200]


async def test_reports_made_while_the_gateway_is_down_arrive_once_it_is_back(
    tmp_path: Path, local: transports.TransportSettings, dsn: str
) -> None:
    gw_port = free_port()
    async with sidecar(tmp_path, local, gw_port) as (port, send, procs):
        ids = await send(5)
        progress = {"kind": "progress"}
        await until(lambda: sample(port, names.SIDECAR_MESSAGES_PROCESSED, outcome="success") == 5, "processed", 60)
        # down for a few seconds: the backlog is probed with growing pauses meanwhile
        await until(lambda: sample(port, names.REPORTS_RETRIED, **progress) >= 3, "retries while down", 30)
        assert sample(port, names.REPORTS_SENT, **progress) == 0
        async with gateway_on(gw_port, dsn, local) as gw:
            await until(lambda: sample(port, names.REPORTS_SENT, **progress) == 5, "reports delivered", 30)
            assert sorted(await jobs_known(gw, ids)) == sorted(ids)
            async with gw.client() as c:
                job = (await c.get(f"/jobs/{ids[0]}")).json()
            assert job["origin"] == "injected" and job["progress"]["status"] == "success"
        assert sample(port, names.REPORTS_DROPPED, kind="progress", reason="gave_up") == 0
        assert "not delivered" in "".join(p.log() for p in procs)  # said once, not per report


async def test_reports_older_than_the_bound_are_dropped_and_counted(
    tmp_path: Path, local: transports.TransportSettings, dsn: str
) -> None:
    gw_port = free_port()
    async with sidecar(tmp_path, local, gw_port, ASYA_REPORT_RETRY_S=1.5) as (port, send, _):
        lost = await send(3)
        dropped = {"kind": "progress", "reason": "gave_up"}
        await until(lambda: sample(port, names.REPORTS_DROPPED, **dropped) == 3, "reports given up", 60)
        async with gateway_on(gw_port, dsn, local) as gw:
            later = await send(1)  # the gateway is back: a new report goes through at once
            await until(lambda: sample(port, names.REPORTS_SENT, kind="progress") == 1, "the later report", 30)
            assert await jobs_known(gw, later) == later
            assert await jobs_known(gw, lost) == []
        assert sample(port, names.REPORTS_DROPPED, **dropped) == 3


async def test_a_later_progress_is_never_overwritten_by_an_earlier_retried_one(
    local: transports.TransportSettings, dsn: str
) -> None:
    gw_port = free_port()
    reporter = Reporter(f"http://127.0.0.1:{gw_port}", token=REPORT_TOKEN, timeout_s=1)
    job, other = uuid.uuid4().hex, uuid.uuid4().hex
    route = {"actors": ["a", "b", "c"], "current": 0}
    try:
        for step in range(3):
            reporter.progress({"id": job, "route": {**route, "current": step}}, "abc"[step], "success")
        reporter.progress({"id": other, "route": route}, "a", "success")
        await until(lambda: reporter.failed >= 1 and reporter.backlog == 4, "all four held", 20)
        async with gateway_on(gw_port, dsn, local) as gw:
            await until(lambda: reporter.backlog == 0, "backlog delivered", 30)
            assert reporter.sent == 4 and reporter.dropped == 0
            async with gw.client() as c:
                assert (await c.get(f"/jobs/{job}")).json()["progress"]["step"] == 2
                async with stream(c, job) as s:
                    first = [await s.next() for _ in range(3)]
            assert [e.data["step"] for e in first if e is not None] == [0, 1, 2]
    finally:
        await reporter.stop()
