"""Helpers for gateway tests: real uvicorn servers in this event loop, an SSE reader.

Test modules import this as ``gateway_helpers``. Every gateway runs the real
app under uvicorn on a loopback socket, so tests talk HTTP to it exactly as
clients do (httpx's in-memory ASGI transport cannot stream SSE).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import uvicorn

from asya.gateway.app import create_app
from asya.gateway.settings import GatewaySettings, token_hash
from asya.transports import TransportSettings

CLIENT_TOKEN = "client-token-for-tests"
REPORT_TOKEN = "report-token-for-tests"


def settings(dsn: str, transport: TransportSettings, **overrides: Any) -> GatewaySettings:
    base: dict[str, Any] = {
        "database_url": dsn,
        "transport": transport,
        "client_token_hashes": frozenset({token_hash(CLIENT_TOKEN)}),
        "report_token_hashes": frozenset({token_hash(REPORT_TOKEN)}),
        "keepalive_s": 1.0,
        "pool_size": 4,
    }
    base.update(overrides)
    return GatewaySettings(**base)


@dataclasses.dataclass
class RunningGateway:
    url: str
    server: uvicorn.Server

    def client(self, token: str | None = CLIENT_TOKEN, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def reporter(self) -> httpx.AsyncClient:
        return self.client(REPORT_TOKEN)


@contextlib.asynccontextmanager
async def running_gateway(gateway_settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """Serve the app on a free loopback port until the block ends (lifespan included)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(gateway_settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "gateway started")
        if task.done():
            task.result()  # raises the start-up error
            raise AssertionError("gateway exited during start")
        yield RunningGateway(url=f"http://127.0.0.1:{port}", server=server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(0.02)


@dataclasses.dataclass
class Event:
    id: int
    kind: str
    data: dict[str, Any]


class SSEReader:
    """Reads one SSE response event by event (comments counted as keep-alives)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.keepalives = 0
        self.retry_ms: int | None = None

    async def next(self, timeout: float = 10.0) -> Event | None:
        """The next event, or None when the server ended the stream."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Event | None:
        fields: dict[str, str] = {}
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if data or fields:
                    return Event(
                        id=int(fields["id"]), kind=fields.get("event", "message"), data=json.loads("\n".join(data))
                    )
                continue
            if line.startswith(":"):
                self.keepalives += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "retry":
                self.retry_ms = int(value)
            else:
                fields[name] = value
        return None

    async def rest(self, timeout: float = 10.0) -> list[Event]:
        """Every event until the server ends the stream."""
        events = []
        while (event := await self.next(timeout)) is not None:
            events.append(event)
        return events


@contextlib.asynccontextmanager
async def stream(client: httpx.AsyncClient, job_id: str, last_event_id: int | None = None) -> AsyncIterator[SSEReader]:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    async with client.stream("GET", f"/jobs/{job_id}/stream", headers=headers, timeout=30) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SSEReader(response)


def progress_report(job_id: str, actor: str, step: int, steps: int, **extra: Any) -> dict[str, Any]:
    """The body ``asya.engine.reporting.Reporter.progress`` sends."""
    return {"id": job_id, "parent_id": None, "actor": actor, "step": step, "steps": steps, "status": "success", **extra}
