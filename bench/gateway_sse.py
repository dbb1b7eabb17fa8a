"""The bench's clients of a running gateway: REST submissions, SSE readers, report posts (aiohttp).

aiohttp rather than httpx on the client side: on two shared cores the load
generator's own CPU is part of what is measured, and aiohttp costs less per
request, so more of the machine is left to the gateway and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

ROUTE = {"actors": ["bench-a", "bench-b"]}
PAYLOAD = {"data": "x" * 1000}


class Client:
    def __init__(self, url: str, client_token: str, report_token: str, connections: int) -> None:
        self.url = url
        self._client_h = {"Authorization": f"Bearer {client_token}"}
        self._report_h = {"Authorization": f"Bearer {report_token}"}
        self._connections = connections
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=0)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def submit(self) -> str:
        assert self.session is not None
        body = {"route": ROUTE, "payload": PAYLOAD}
        async with self.session.post(f"{self.url}/jobs", json=body, headers=self._client_h) as resp:
            data = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"POST /jobs answered {resp.status}: {data}")
            return str(data["id"])

    async def report(self, job_id: str, body: dict[str, Any]) -> None:
        assert self.session is not None
        async with self.session.post(
            f"{self.url}/jobs/{job_id}/progress", json={"id": job_id, **body}, headers=self._report_h
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"progress report answered {resp.status}: {await resp.text()}")
            await resp.read()


async def submissions(client: Client, n: int, concurrency: int) -> tuple[float, list[str]]:
    """Submit ``n`` jobs from ``concurrency`` concurrent clients; (jobs/s, ids)."""
    ids: list[str] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            ids.append(await client.submit())

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0), ids


class Stream:
    """One open ``GET /jobs/{id}/stream``; calls ``on_event(kind, data, arrived_s)`` for every event."""

    def __init__(self, job_id: str, on_event: Callable[[str, dict[str, Any], float], None]) -> None:
        self.job_id = job_id
        self.on_event = on_event
        self.events = 0
        self.open = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.task = asyncio.create_task(self._run(session, url, token))

    async def _run(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(f"{url}/jobs/{self.job_id}/stream", headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                raise RuntimeError(f"stream of {self.job_id} answered {resp.status}")
            self.open.set()
            kind, data = "message", ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif line == "" and data:
                    self.events += 1
                    self.on_event(kind, json.loads(data), time.perf_counter())
                    kind, data = "message", ""

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self.task


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
