"""One LISTEN connection per gateway process, fanned out to the open streams.

``pg_notify`` (see ``store.py``) carries only the job id: a woken stream reads
the job's new events from the table itself, so a notification that is lost,
merged or duplicated costs nothing but a query. What would cost events is a
dead LISTEN connection, so when it drops every subscriber is told (``lost``)
and ends its stream; the client resumes with ``Last-Event-ID`` once the hub
has reconnected (with back-off, in the background). A connection can also die
silently (a partition, a frozen server: no FIN ever comes), so a watchdog runs
``SELECT 1`` on it every ``check_s`` and drops it when that takes longer than
``check_timeout_s``, which takes the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import asyncpg

from asya.gateway.store import CHANNEL, DATABASE_DOWN

log = logging.getLogger("asya.gateway.notify")

_BACKOFF_MAX_S = 5.0


class Subscription:
    """Wakes when the job may have new events (``changed``) or the hub lost its connection (``lost``)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.changed = asyncio.Event()
        self.lost = False

    def wake(self) -> None:
        self.changed.set()

    def break_(self) -> None:
        self.lost = True
        self.changed.set()


class EventHub:
    def __init__(self, dsn: str, *, check_s: float = 10.0, check_timeout_s: float = 5.0) -> None:
        self._dsn = dsn
        self._check_s = check_s
        self._check_timeout_s = check_timeout_s
        self._watchdog: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._subs: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False
        self.connected = asyncio.Event()

    async def start(self) -> None:
        await self._connect()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        self._closed = True
        for task in (self._reconnect, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._drop_all()

    def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(job_id)
        if not self.connected.is_set():
            sub.break_()  # subscribing blind would miss live events: the caller ends the stream
        self._subs[job_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self.connected.set()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for sub in self._subs.get(payload, ()):
            sub.wake()

    def _terminated(self, _conn: object) -> None:
        if self._closed:
            return
        log.warning("lost the LISTEN connection to PostgreSQL; open streams end and clients resume")
        self.connected.clear()
        self._drop_all()
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    def _drop_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.break_()

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._check_s)
            conn = self._conn
            if conn is None or conn.is_closed() or not self.connected.is_set():
                continue
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self._check_timeout_s)
            except (*DATABASE_DOWN, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection unresponsive (%s): dropping it", type(exc).__name__)
                conn.terminate()  # runs _terminated: streams end, reconnect starts

    async def _reconnect_loop(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                await self._connect()
                log.info("LISTEN connection to PostgreSQL restored")
                return
            except (*DATABASE_DOWN, asyncpg.PostgresError) as exc:
                log.debug("reconnect to PostgreSQL failed: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
