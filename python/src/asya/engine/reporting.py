"""Reports to the gateway (SPEC sections 5, 7, 9), off the data path.

Two kinds, one reporter:
- progress, after every finished delivery: ``POST <gateway>/jobs/<id>/progress``
  ``{id, parent_id, actor, step, steps, status, sent, outputs}``;
- final, from the end actors: ``POST <gateway>/jobs/<id>/final``
  ``{id, parent_id, status: succeeded|retrying|failed, actor, route: {actors, current}, ...}``.

Progress reports go through a bounded in-memory queue drained by one
background task, so a slow or absent gateway never holds an envelope back. A
final report is tried once before the end actor acknowledges (a crash in between
repeats it, never loses it), unless the gateway is known to be down.

A report the gateway did not take (no answer, 5xx, 408, 429) is not dropped: it
waits in a backlog and is retried in the background with exponential backoff
and jitter (0.2 s doubling to 5 s). The backoff belongs to the gateway, not to
each report: while one probe fails nothing else is tried, so an outage costs one
timeout per pause, not one per report. A job with a report in the backlog sends
its later reports behind it, so an older progress never overwrites a newer one.
A report is dropped, and counted, only when it is older than ``retry_for_s``
(``ASYA_REPORT_RETRY_S``, 60 s), when the backlog holds ``queue_size`` reports,
or when the gateway refuses it for good (another 4xx); on shutdown everything
gets a short grace.

Every report carries ``Authorization: Bearer $ASYA_GATEWAY_TOKEN`` when that
variable is set (the gateway's report token; never logged).

aiohttp is imported only when a gateway URL is configured: it costs a process
about 10 MiB of resident memory, and without a gateway nothing here sends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from asya.contracts.envelope import Envelope
from asya.engine.metrics import Metrics

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("asya.engine.reporting")

SUCCEEDED = "succeeded"
FAILED = "failed"
RETRYING = "retrying"

_FLUSH_ON_STOP_S = 2.0
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 5.0
_RETRY_STATUSES = frozenset({408, 429})


@dataclasses.dataclass
class _Report:
    kind: str
    event: dict[str, Any]
    born: float
    attempts: int = 0

    @property
    def job(self) -> str:
        return str(self.event.get("id"))


class _Refused(Exception):
    """The gateway answered with a status that retrying cannot change."""


class Reporter:
    """Posts progress and final reports to the gateway; a no-op without a gateway URL."""

    def __init__(
        self,
        gateway_url: str | None,
        *,
        queue_size: int = 10_000,
        timeout_s: float = 5.0,
        token: str | None = None,
        metrics: Metrics | None = None,
        retry_for_s: float = 60.0,
    ) -> None:
        self.url = (gateway_url or "").rstrip("/")
        token = os.environ.get("ASYA_GATEWAY_TOKEN", "") if token is None else token
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._queue: asyncio.Queue[_Report] = asyncio.Queue(maxsize=queue_size)
        self._limit = queue_size
        self._backlog: collections.OrderedDict[str, collections.deque[_Report]] = collections.OrderedDict()
        self._waiting = 0
        self._wake = asyncio.Event()
        self._down_until = 0.0
        self._backoff = 0.0
        self._task: asyncio.Task[None] | None = None
        self._retrier: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self._metrics = metrics
        if metrics is not None:  # read at scrape time: nothing to keep in step on the hot path
            metrics.reports_pending.set_function(lambda: self._queue.qsize() + self._waiting)
        self.dropped = 0
        self.failed = 0
        self.sent = 0
        self._outage = False
        self._errors: tuple[type[BaseException], ...] = (TimeoutError, OSError)
        """What a failed post raises that retrying may cure."""
        if self.url:
            import aiohttp

            self._errors += (aiohttp.ClientError,)

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
        if self._task is None:
            self.start()
        try:
            self._queue.put_nowait(_Report("progress", event, time.monotonic()))
        except asyncio.QueueFull:
            self._drop("progress", "queue_full", event)

    async def final(self, status: str, env: Envelope, **extra: Any) -> bool:
        """Send a final report (``succeeded``, ``retrying`` or ``failed``); True when the gateway took it now.

        False means it waits in the background backlog (or was refused); the caller never waits for retries.
        """
        if not self.url:
            return False
        event: dict[str, Any] = {"id": str(env.get("id", "")), "parent_id": env.get("parent_id"), "status": status}
        route = env.get("route")
        if isinstance(route, dict):  # the gateway fills in step events still on their way (gateway/steps.py)
            event["route"] = {"actors": route.get("actors"), "current": route.get("current")}
        event.update({k: v for k, v in extra.items() if v is not None})
        report = _Report("final", event, time.monotonic())
        if report.job in self._backlog or time.monotonic() < self._down_until:
            self._hold(report)  # behind this job's earlier reports / the gateway is known to be down
            return False
        return await self._send(report)

    def start(self) -> None:
        if self.url and self._task is None:
            self._task = asyncio.create_task(self._drain())
            self._retrier = asyncio.create_task(self._retry())

    async def stop(self) -> None:
        """Give queued and held reports a short grace to leave, then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed(), _FLUSH_ON_STOP_S)
            for task in (self._task, self._retrier):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._task = self._retrier = None
            if self._waiting:
                log.warning("stopping with %d gateway report(s) not delivered", self._waiting)
        if self._client is not None:
            await self._client.close()

    async def _flushed(self) -> None:
        await self._queue.join()
        while self._waiting:
            await asyncio.sleep(0.05)

    @property
    def backlog(self) -> int:
        """Reports waiting for a retry."""
        return self._waiting

    # --- sending ---

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            import aiohttp

            timeout = aiohttp.ClientTimeout(total=self._timeout_s)
            self._client = aiohttp.ClientSession(timeout=timeout, json_serialize=_dumps, headers=self._headers)
        return self._client

    async def _post(self, report: _Report) -> None:
        """One attempt; raises ``_Refused`` for a final no, anything else for "try again later"."""
        url = f"{self.url}/jobs/{quote(report.job, safe='')}/{report.kind}"
        report.attempts += 1
        async with self._session().post(url, json=report.event) as resp:
            if resp.status < 400:
                return
            if resp.status >= 500 or resp.status in _RETRY_STATUSES:
                raise ConnectionError(f"gateway answered {resp.status}")
            raise _Refused(f"gateway answered {resp.status}")

    async def _send(self, report: _Report) -> bool:
        """Try ``report`` now; on a retryable failure it joins the backlog. True when delivered."""
        try:
            await self._post(report)
        except _Refused as exc:
            self._drop(report.kind, "rejected", report.event, str(exc))
            return False
        except self._errors as exc:
            self._failed(str(exc) or type(exc).__name__, report.event)
            self._gateway_down()
            self._hold(report)
            return False
        self._delivered(report)
        return True

    async def _drain(self) -> None:
        while True:
            report = await self._queue.get()
            try:
                if report.job in self._backlog or time.monotonic() < self._down_until:
                    self._hold(report)
                else:
                    await self._send(report)
            finally:
                self._queue.task_done()

    # --- the backlog: retried in order, one gateway-wide backoff ---

    def _hold(self, report: _Report) -> None:
        if self._waiting >= self._limit:
            self._drop_oldest("queue_full")
        self._backlog.setdefault(report.job, collections.deque()).append(report)
        self._waiting += 1
        self._wake.set()

    def _gateway_down(self) -> None:
        self._outage = True
        self._backoff = min(BACKOFF_MAX_S, self._backoff * 2) if self._backoff else BACKOFF_BASE_S
        self._down_until = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)

    async def _retry(self) -> None:
        while True:
            if not self._backlog:
                self._wake.clear()
                await self._wake.wait()
                continue
            pause = self._down_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self._expire()
            if not self._backlog:
                continue
            job, reports = next(iter(self._backlog.items()))
            report = reports[0]
            if self._metrics is not None:
                self._metrics.reports_retried.labels(kind=report.kind).inc()
            try:
                await self._post(report)
            except _Refused as exc:
                self._pop(job)
                self._drop(report.kind, "rejected", report.event, str(exc))
            except self._errors:
                self._gateway_down()
            else:
                self._pop(job)
                self._backoff = 0.0
                self._down_until = 0.0
                self._delivered(report)

    def _pop(self, job: str) -> None:
        reports = self._backlog[job]
        reports.popleft()
        self._waiting -= 1
        if not reports:
            del self._backlog[job]

    def _expire(self) -> None:
        oldest = time.monotonic() - self.retry_for_s
        for job in list(self._backlog):
            reports = self._backlog[job]
            while reports and reports[0].born < oldest:
                gone = reports.popleft()
                self._waiting -= 1
                self._drop(gone.kind, "gave_up", gone.event, f"not delivered within {self.retry_for_s:g}s")
            if not reports:
                del self._backlog[job]

    def _drop_oldest(self, reason: str) -> None:
        job, reports = next(iter(self._backlog.items()))
        gone = reports.popleft()
        self._waiting -= 1
        if not reports:
            del self._backlog[job]
        self._drop(gone.kind, reason, gone.event)

    # --- counting ---

    def _delivered(self, report: _Report) -> None:
        self.sent += 1
        if self._metrics is not None:
            self._metrics.reports_sent.labels(kind=report.kind).inc()
        if self._outage and report.attempts > 1:
            self._outage = False  # said once per outage, not once per report in the backlog
            log.info("gateway takes reports again (%d more waiting to be sent)", self._waiting)

    def _drop(self, kind: str, reason: str, event: dict[str, Any], why: str = "") -> None:
        self.dropped += 1
        if self._metrics is not None:
            self._metrics.reports_dropped.labels(kind=kind, reason=reason).inc()
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "gateway %s report for %s dropped (%s%s); %d dropped so far",
                kind,
                event.get("id"),
                reason,
                f": {why}" if why else "",
                self.dropped,
            )

    def _failed(self, why: str, event: dict[str, Any]) -> None:
        self.failed += 1
        if self.failed == 1 or self.failed % 1000 == 0:
            log.warning(
                "gateway report for %s not delivered (%s); %d failed post(s) so far, retrying in the background",
                event.get("id"),
                why,
                self.failed,
            )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
