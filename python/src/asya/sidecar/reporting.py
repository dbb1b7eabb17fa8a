"""Progress reports to the gateway (SPEC section 5), off the data path.

Reports are advisory: they go through a bounded in-memory queue drained by one
background task, so a slow or absent gateway never slows an envelope down. When
the queue is full a report is dropped and counted; results themselves never
travel this way (happy-end and error-end store them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from asya.contracts.envelope import Envelope

log = logging.getLogger("asya.sidecar.reporting")


class ProgressReporter:
    """POSTs ``{id, parent_id, actor, step, steps, status, sent}`` to ``<gateway>/jobs/<id>/progress``.

    ``status`` is an ``Outcome`` value; ``sent`` is how many envelopes the
    delivery produced (outputs, error-end or happy-end copies, requeues).
    """

    def __init__(self, gateway_url: str, *, queue_size: int = 10_000) -> None:
        self.url = gateway_url
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def report(self, env: Envelope, actor: str, status: str, **extra: Any) -> None:
        if not self.url:
            return
        route = env.get("route", {})
        event = {
            "id": env.get("id"),
            "parent_id": env.get("parent_id"),
            "actor": actor,
            "step": route.get("current"),
            "steps": len(route.get("actors", [])),
            "status": status,
            **extra,
        }
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self.url and self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _drain(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                event = await self._queue.get()
                try:
                    url = f"{self.url}/jobs/{quote(str(event['id']), safe='')}/progress"
                    async with session.post(url, json=event) as resp:
                        if resp.status >= 400:
                            log.debug("gateway answered %s to a progress report", resp.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.debug("progress report not delivered: %s", exc)
