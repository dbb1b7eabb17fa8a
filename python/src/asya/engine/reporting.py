"""Reports to the gateway (SPEC sections 5, 7, 9), off the data path.

Two kinds, one reporter:
- progress, after every finished delivery: ``POST <gateway>/jobs/<id>/progress``
  ``{id, parent_id, actor, step, steps, status, sent, outputs}``;
- final, from the end actors: ``POST <gateway>/jobs/<id>/final``
  ``{id, parent_id, status: succeeded|retrying|failed, actor, ...}``.

Progress reports go through a bounded in-memory queue drained by one
background task, so a slow or absent gateway never holds an envelope back; a
full queue drops a report and counts it, and on shutdown the queue gets a short
grace to empty. Final reports are sent before the end actor acknowledges (a
crash in between repeats the report, never loses it), each bounded by a short
timeout so a gateway outage costs seconds, not messages: the stored result or
dead letter stays the record of truth.

Every report carries ``Authorization: Bearer $ASYA_GATEWAY_TOKEN`` when that
variable is set (the gateway's report token; never logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
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

    def __init__(
        self,
        gateway_url: str | None,
        *,
        queue_size: int = 10_000,
        timeout_s: float = 5.0,
        token: str | None = None,
    ) -> None:
        self.url = (gateway_url or "").rstrip("/")
        token = os.environ.get("ASYA_GATEWAY_TOKEN", "") if token is None else token
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._timeout_s = timeout_s
        self.dropped = 0
        self.failed = 0

    def progress(self, env: Envelope, actor: str, status: str, **extra: Any) -> None:
        """Queue a progress report for the delivery of ``env`` at ``actor``."""
        if not self.url:
            return  # every delivery comes here: build nothing when there is no gateway
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

    async def final(self, status: str, env: Envelope, **extra: Any) -> bool:
        """Send a final report (``succeeded``, ``retrying`` or ``failed``) for ``env``; True when the gateway took it."""
        if not self.url:
            return False
        event: dict[str, Any] = {"id": str(env.get("id", "")), "parent_id": env.get("parent_id"), "status": status}
        event.update({k: v for k, v in extra.items() if v is not None})
        return await self._post("final", event)

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
            if self._client is not None:
                await self._client.close()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), _FLUSH_ON_STOP_S)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._client is not None:
            await self._client.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            timeout = aiohttp.ClientTimeout(total=self._timeout_s)
            self._client = aiohttp.ClientSession(timeout=timeout, json_serialize=_dumps, headers=self._headers)
        return self._client

    async def _post(self, kind: str, event: dict[str, Any]) -> bool:
        url = f"{self.url}/jobs/{quote(str(event.get('id')), safe='')}/{kind}"
        try:
            async with self._session().post(url, json=event) as resp:
                if resp.status < 400:
                    return True
                self._failed(f"gateway answered {resp.status}", event)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(str(exc) or type(exc).__name__, event)
        return False

    async def _drain(self) -> None:
        while True:
            kind, event = await self._queue.get()
            try:
                await self._post(kind, event)
            finally:
                self._queue.task_done()

    def _failed(self, why: str, event: dict[str, Any]) -> None:
        self.failed += 1
        if self.failed == 1 or self.failed % 1000 == 0:
            log.warning("gateway report for %s not delivered (%s); %d so far", event.get("id"), why, self.failed)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
