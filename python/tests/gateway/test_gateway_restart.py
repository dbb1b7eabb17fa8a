"""A gateway process killed with SIGKILL loses no job state: what it acknowledged is in PostgreSQL.

Real ``python -m asya.gateway serve`` processes on one port (as a restarted pod
behind its Service): the first is killed in the middle of a burst of reports and
with a stream open; the second, started on the same database, serves every job
and every acknowledged event, and the interrupted stream resumes with
``Last-Event-ID`` without a gap or a repeat.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import eventually, progress_report, stream, until
from support.procs import Proc, free_port

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

CLIENT, REPORTER = "restart-client-token", "restart-report-token"


class Served:
    def __init__(self, dsn: str, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ASYA_GATEWAY_DATABASE_URL": dsn,
            "ASYA_GATEWAY_TOKENS": CLIENT,
            "ASYA_GATEWAY_REPORT_TOKEN": REPORTER,
            "ASYA_GATEWAY_HOST": "127.0.0.1",
            "ASYA_GATEWAY_PORT": str(self.port),
            "ASYA_TRANSPORT": "local",
            "ASYA_TRANSPORT_URL": str(tmp / "queues"),
            "ASYA_GATEWAY_KEEPALIVE_S": "1",
        }
        self.tmp = tmp
        self.procs: list[Proc] = []

    async def start(self) -> Proc:
        proc = Proc([sys.executable, "-m", "asya.gateway", "serve"], self.env, self.tmp / f"gw-{len(self.procs)}.log")
        self.procs.append(proc)

        async def ready() -> bool:
            assert proc.alive(), proc.log()
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"{self.url}/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, "the gateway process is ready", timeout=60)
        return proc

    def client(self, token: str = CLIENT) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture
def served(gateway_dsn: str, tmp_path: Path) -> Iterator[Served]:
    s = Served(gateway_dsn, tmp_path)
    yield s
    for proc in s.procs:
        proc.stop()


async def test_sigkill_mid_burst_loses_no_acknowledged_report_and_streams_resume(served: Served) -> None:
    first = await served.start()
    async with served.client() as c, served.client(REPORTER) as r:
        jobs = [
            (await c.post("/jobs", json={"route": {"actors": ["a", "b"]}, "payload": {"n": i}})).json()["id"]
            for i in range(4)
        ]
        await r.post(f"/jobs/{jobs[0]}/progress", json=progress_report(jobs[0], "a", 0, 2))
        await r.post(f"/jobs/{jobs[0]}/final", json={"id": jobs[0], "status": "succeeded", "result": {"ok": 1}})
        await r.post(f"/jobs/{jobs[1]}/final", json={"id": jobs[1], "status": "retrying"})
        watched = jobs[2]
        async with stream(c, watched) as s:
            seen = [await s.next()]
            acked: list[int] = []

            async def send(step: int) -> None:
                try:
                    resp = await r.post(f"/jobs/{watched}/progress", json=progress_report(watched, "a", step, 200))
                except httpx.HTTPError:
                    return  # in flight when the process died: may or may not have been stored
                if resp.status_code == 200:
                    acked.append(step)

            burst = [asyncio.create_task(send(step)) for step in range(200)]
            await until(lambda: len(acked) >= 20, "some reports acknowledged", timeout=30)
            first.kill()  # SIGKILL: no shutdown hook, no flush, connections cut mid-transaction
            await asyncio.gather(*burst)
            try:
                while (event := await s.next(timeout=10)) is not None:
                    seen.append(event)
            except (httpx.HTTPError, TimeoutError):
                pass  # the stream was cut; what arrived before is what the client keeps
    assert 20 <= len(acked) < 200, len(acked)
    await served.start()
    async with served.client() as c, served.client(REPORTER) as r:
        async with stream(c, jobs[0]) as s:
            assert [e.kind for e in await s.rest()] == ["created", "progress", "final"]
        job = (await c.get(f"/jobs/{jobs[0]}")).json()
        assert job["status"] == "succeeded" and job["result"] == {"ok": 1}
        assert (await c.get(f"/jobs/{jobs[1]}")).json()["status"] == "retrying"
        assert (await c.get(f"/jobs/{jobs[3]}")).json()["status"] == "queued"
        await r.post(f"/jobs/{watched}/final", json={"id": watched, "status": "succeeded"})
        async with stream(c, watched) as s:
            stored = await s.rest()
        steps = [e.data["step"] for e in stored if e.kind == "progress"]
        assert set(acked) <= set(steps), sorted(set(acked) - set(steps))  # every 200 it gave is durable
        assert len(steps) == len(set(steps)) and stored[-1].kind == "final"
        last = seen[-1]
        assert last is not None
        async with stream(c, watched, last_event_id=last.id) as s:
            resumed = await s.rest()
        # the interrupted client's events plus the resumed ones are exactly what is stored
        assert [e.id for e in seen if e is not None] + [e.id for e in resumed] == [e.id for e in stored]
