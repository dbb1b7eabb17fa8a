"""Which jobs are cancelled, known to every sidecar without a gateway call per message.

``CancellationWatch`` keeps a ``CancelledSet`` of job ids in memory and refreshes
it in the background from the gateway's feed (``GET <gateway>/internal/cancellations
?after=<cursor>``, report token, every ``ASYA_CANCEL_POLL_S`` = 0.5 s), so the
per-envelope question "is this job cancelled?" is a few set lookups. It runs only
when ``ASYA_GATEWAY_URL`` is set; the sidecar starts it (the end actors do not
need it). A gateway that is down or slow changes nothing on the data path: the
set keeps what it had, the failure is logged once, and polls back off (up to
10 s, with jitter) until the gateway answers again.

An envelope belongs to a cancelled job when its ``id``, its ``parent_id``, or a
dot-prefix of either is in the set: fan-out children are ``<id>.<n>`` (and theirs
``<id>.<n>.<m>``) with ``parent_id`` = the id one level up, so cancelling a job
stops its whole fan-out tree. The price is that cancelling an id ``a`` also stops
an unrelated injected envelope whose own id is ``a.<something>``; gateway job ids
(uuid hex) contain no dot, so this only concerns producers that chose such ids.

Memory is bounded twice: an id is forgotten ``ASYA_CANCEL_TTL_S`` (3600 s) after
this process learnt it, and at most ``max_ids`` (100 000) are kept, the oldest
going first. A cancelled job's envelope that waits in a queue longer than the TTL
is processed as if the job were live (its reports are ignored by the gateway).

aiohttp is imported when the watch starts polling, not with this module: it costs
a process about 10 MiB of resident memory, and without a gateway there is no feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from asya.contracts import metrics as names
from asya.engine.metrics import Metrics

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("asya.engine.cancellation")

MAX_BACKOFF_S = 10.0
"""Longest pause between polls while the gateway does not answer."""


class CancelledSet:
    """Cancelled job ids, each kept ``ttl_s`` after it was added and at most ``max_ids`` of them.

    A plain dict in insertion order: with one TTL for every entry, insertion order is
    expiry order, so expiring is popping from the front (amortised O(1) per id).
    """

    def __init__(self, ttl_s: float = 3600.0, max_ids: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._clock = clock
        self.entries: dict[str, float] = {}
        """id -> when it expires (monotonic); the hot path tests this dict's truth (C speed) before matching."""

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.entries

    def add(self, job_id: str) -> None:
        # a repeat (the feed re-reads recent ids) keeps the first sighting, so the order stays the expiry order
        if job_id not in self.entries:
            self.entries[job_id] = self._clock() + self.ttl_s
            self.expire()

    def expire(self) -> None:
        """Forget ids past their TTL, then the oldest beyond ``max_ids``."""
        ids = self.entries
        now = self._clock()
        while ids:
            first = next(iter(ids))
            if ids[first] > now and len(ids) <= self.max_ids:
                break
            del ids[first]

    def match(self, env_id: object, parent_id: object) -> str | None:
        """The cancelled id ``env_id`` / ``parent_id`` belongs to (itself or a dot-prefix), or None."""
        ids = self.entries
        for candidate in (env_id, parent_id):
            if not isinstance(candidate, str):
                continue
            while True:
                if candidate in ids:
                    return candidate
                cut = candidate.rfind(".")
                if cut <= 0:
                    break
                candidate = candidate[:cut]
        return None


class CancellationWatch:
    """Polls the gateway's cancellation feed into a ``CancelledSet``; a no-op without a gateway URL."""

    def __init__(
        self,
        gateway_url: str | None,
        *,
        token: str = "",
        metrics: Metrics | None = None,
        interval_s: float = 0.5,
        ttl_s: float = 3600.0,
        max_ids: int = 100_000,
        timeout_s: float = 2.0,
    ) -> None:
        self.url = (gateway_url or "").rstrip("/")
        self.ids = CancelledSet(ttl_s, max_ids)
        self.interval_s = interval_s
        self.polled = asyncio.Event()
        """Set after the first successful poll (tests and readiness logs wait on it)."""
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout_s = timeout_s
        self._cursor: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures: Any = None
        self._known: Any = None
        if metrics is not None:
            self._failures = metrics.bound(Counter, names.CANCELLATION_POLL_FAILURES).labels()
            self._known = metrics.bound(Gauge, names.SIDECAR_CANCELLED_KNOWN).labels()

    def cancelled(self, env: dict[str, Any]) -> str | None:
        """The cancelled job id ``env`` belongs to, or None (the common case: one empty-dict test)."""
        if not self.ids.entries:
            return None
        return self.ids.match(env.get("id"), env.get("parent_id"))

    async def loaded(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first successful poll; True when it happened (or no gateway)."""
        if not self.url:
            return True
        try:
            await asyncio.wait_for(self.polled.wait(), timeout_s)
        except TimeoutError:
            log.warning("no cancellation list from %s within %gs; consuming without it for now", self.url, timeout_s)
            return False
        return True

    def start(self) -> None:
        if self.url and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        failing = False
        pause = self.interval_s
        async with aiohttp.ClientSession(timeout=timeout, headers=self._headers) as session:
            while True:
                try:
                    await self.poll(session)
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError, TypeError) as exc:
                    if self._failures is not None:
                        self._failures.inc()
                    if not failing:
                        log.warning(
                            "cancellation feed at %s unavailable (%s); processing goes on with %d known "
                            "cancellation(s), retrying with backoff",
                            self.url,
                            _why(exc),
                            len(self.ids),
                        )
                    failing = True
                    pause = min(max(pause, self.interval_s) * 2, MAX_BACKOFF_S)
                else:
                    if failing:
                        log.info("cancellation feed at %s answers again", self.url)
                    failing = False
                    pause = self.interval_s
                if self._known is not None:
                    self._known.set(len(self.ids))
                await asyncio.sleep(pause * random.uniform(0.8, 1.2) if failing else pause)

    async def poll(self, session: aiohttp.ClientSession) -> None:
        """Read the feed from the cursor until no page is left; raises on any failure."""
        while True:
            params = {"after": self._cursor} if self._cursor is not None else {}
            async with session.get(f"{self.url}/internal/cancellations", params=params) as resp:
                if resp.status != 200:
                    raise ValueError(f"gateway answered {resp.status}")
                page = await resp.json()
            for job_id in page["cancelled"]:
                if isinstance(job_id, str):
                    self.ids.add(job_id)
            self._cursor = str(page["cursor"])
            if not page.get("more"):
                break
        self.ids.expire()
        self.polled.set()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["CancellationWatch", "CancelledSet"]
