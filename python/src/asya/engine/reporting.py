"""Reports to the gateway (SPEC sections 5, 7, 9), off the data path.

Two kinds, one reporter:
- progress, after every finished delivery: ``POST <gateway>/jobs/<id>/progress``
  ``{id, parent_id, actor, step, steps, status, sent, outputs}``;
- final, from the end actors: ``POST <gateway>/jobs/<id>/final``
  ``{id, parent_id, status: succeeded|retrying|failed, actor, ...}``.

Reports go through a bounded in-memory queue drained by one background task,
so a slow or absent gateway never holds an envelope back. They are advisory:
results and dead letters are stored by the crew, which is the record of truth.
A full queue drops a report and counts it; on shutdown the queue gets a short
grace to empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from asya.contracts.envelope import Envelope

log = logging.getLogger("asya.engine.reporting")

SUCCEEDED = "succeeded"
FAILED = "failed"
RETRYING = "retrying"

_FLUSH_ON_STOP_S = 2.0


class Reporter:
    """Posts progress and final reports to the gateway; a no-op without a gateway URL."""

    def __init__(self, gateway_url: str | None, *, queue_size: int = 10_000, timeout_s: float = 5.0) -> None:
        self.url = (gateway_url or "").rstrip("/")
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._timeout_s = timeout_s
        self.dropped = 0
        self.failed = 0

    def progress(self, env: Envelope, actor: str, status: str, **extra: Any) -> None:
        """Queue a progress report for the delivery of ``env`` at ``actor``."""
        route = env.get("route") if isinstance(env.get("route"), dict) else {}
        assert isinstance(route, dict)
        actors = route.get("actors")
        event = {
            "id": env.get("id"),
            "parent_id": env.get("parent_id"),
            "actor": actor,
            "step": route.get("current"),
            "steps": len(actors) if isinstance(actors, list) else 0,
            "status": status,
            **extra,
        }
        self._put("progress", event)

    def final(self, status: str, env: Envelope, **extra: Any) -> None:
        """Queue a final report (``succeeded``, ``retrying`` or ``failed``) for ``env``."""
        event: dict[str, Any] = {"id": str(env.get("id", "")), "parent_id": env.get("parent_id"), "status": status}
        event.update({k: v for k, v in extra.items() if v is not None})
        self._put("final", event)

    def _put(self, kind: str, event: dict[str, Any]) -> None:
        if not self.url:
            return
        if self._task is None:
            self.start()
        try:
            self._queue.put_nowait((kind, event))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("gateway report queue full: %d report(s) dropped so far", self.dropped)

    def start(self) -> None:
        if self.url and self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def stop(self) -> None:
        """Give queued reports a short grace to leave, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), _FLUSH_ON_STOP_S)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _drain(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, json_serialize=_dumps) as session:
            while True:
                kind, event = await self._queue.get()
                url = f"{self.url}/jobs/{quote(str(event.get('id')), safe='')}/{kind}"
                try:
                    async with session.post(url, json=event) as resp:
                        if resp.status >= 400:
                            self._failed(f"gateway answered {resp.status}", event)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    self._failed(str(exc) or type(exc).__name__, event)
                finally:
                    self._queue.task_done()

    def _failed(self, why: str, event: dict[str, Any]) -> None:
        self.failed += 1
        if self.failed == 1 or self.failed % 1000 == 0:
            log.warning("gateway report for %s not delivered (%s); %d so far", event.get("id"), why, self.failed)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)
