"""A small HTTP endpoint that plays the gateway for ``asya dev run``.

Sidecars POST ``/jobs/<id>/progress`` after each envelope (with ``sent``, the
envelopes it published for it) and the end actors POST ``/jobs/<id>/final``.
From these the tracker keeps the count of *open* envelopes: it starts at the
number of inputs, each finished delivery adds ``sent - 1``, each stored result
or dead letter subtracts one. The run is complete when nothing is open.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from typing import Any

from aiohttp import web


@dataclasses.dataclass
class Progress:
    """Counters the live view renders."""

    inputs: int = 0
    open: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    by_actor: dict[str, collections.Counter[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class Tracker:
    def __init__(self) -> None:
        self.progress = Progress()
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def expect(self, inputs: int) -> None:
        self.progress.inputs += inputs
        self.progress.open += inputs
        self.changed.set()

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.post("/jobs/{id}/progress", self._progress), web.post("/jobs/{id}/final", self._final)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _progress(self, request: web.Request) -> web.Response:
        event = await request.json()
        p = self.progress
        p.by_actor[str(event.get("actor"))][str(event.get("status"))] += 1
        p.open += int(event.get("sent", 1)) - 1
        self.changed.set()
        return web.json_response({"ok": True})

    async def _final(self, request: web.Request) -> web.Response:
        event = await request.json()
        p = self.progress
        status = event.get("status")
        if status == "succeeded":
            p.succeeded += 1
            p.open -= 1
        elif status == "failed":
            p.failed += 1
            p.open -= 1
            p.failures.append(event)
        elif status == "retrying":
            p.retrying += 1
        self.changed.set()
        return web.json_response({"ok": True})
