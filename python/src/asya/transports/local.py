"""The ``local`` transport: queues in one SQLite file, no server.

Used on laptops (``asya`` CLI, examples) and in tests, by the sidecar and crew
actors through ``transports.create``. It behaves like SQS: a received message
is leased (hidden) for ``visibility_timeout_s``; ack deletes it, nack makes it
visible again, and a consumer that dies without settling loses the lease so the
message comes back. Several processes may share the file.

Why shaped so:
- SQLite in WAL mode gives durable commits and cross-process locking from the
  stdlib; claims run in ``BEGIN IMMEDIATE`` so two consumers never lease the
  same row, and ``busy_timeout`` absorbs the short waits for the write lock.
- Every SQLite call runs on one dedicated thread per transport (one
  connection, never shared across threads). Writes queued while that thread is
  busy are committed together in one transaction ("group commit"): each
  ``publish`` still returns only after its own fsync'd commit, but many
  concurrent publishes/acks share one fsync.
- Publishes wake consumers at once: in-process directly, in other processes
  through a datagram "doorbell" (``_doorbell.py``). Consumers still poll with an
  adaptive back-off (1 ms after a hit, doubling to 50 ms when idle) as a safety net.
- A lease is identified by (row id, receive count): a settle from a consumer
  whose lease already expired and was re-issued to someone else changes nothing.
  The receive count is the delivery's ``attempt``; the row id its ``message_id``.
- SQLite failures leave every operation as ``TransportError`` (from the
  ``sqlite3`` exception). Option ``queue_prefix`` is accepted and ignored: no
  other tool sees these queues, and ``asya dev run`` counts them by canonical name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from asya.contracts.errors import TransportError, TransportFeatureNotSupported
from asya.transports import _local_sql as sql
from asya.transports._doorbell import Doorbell
from asya.transports.base import Delivery, Transport, TransportSettings, override

log = logging.getLogger(__name__)

DEFAULT_DIR = ".asya/queues"
DB_FILE = "queues.sqlite3"
_POLL_MIN_S = 0.001
_POLL_MAX_S = 0.050
_SYNC_MODES = ("FULL", "NORMAL", "OFF")


_T = TypeVar("_T")
_Op = Callable[[sqlite3.Connection], Any]


@dataclasses.dataclass(slots=True)
class _Lease:
    """What a local ``Delivery.raw`` holds: the row and the receive that leased it."""

    id: int
    receive_count: int
    consumer: _Consumer


class _Consumer:
    """One ``consume`` iterator: what it leased (yielded or not yet), and its deliveries' settle hooks."""

    def __init__(self, transport: LocalTransport) -> None:
        self._t = transport
        self.outstanding: dict[int, _Lease] = {}
        """Yielded and not settled: bounded by prefetch."""
        self.claimed: list[tuple[int, bytes, str, int]] = []
        """Leased in the last claim batch, not yielded yet."""
        self.slot_freed: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.slot_freed is not None and not self.slot_freed.done():
            self.slot_freed.set_result(None)

    # _Settler protocol (called by Delivery)

    async def ack(self, delivery: Delivery) -> None:
        await self._t._settle(delivery, sql.delete, "ack")

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        await self._t._settle(delivery, sql.requeue if requeue else sql.delete, "nack")

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        if not delivery.settled:
            await self._t._settle(delivery, functools.partial(sql.extend, seconds=seconds), "extend")


class LocalTransport(Transport):
    """SQLite-backed queues under ``settings.url`` (a directory)."""

    name: ClassVar[str] = "local"
    supports_delay: ClassVar[bool] = True
    max_message_bytes: ClassVar[int | None] = None

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        url = settings.url.removeprefix("file://") or DEFAULT_DIR
        self.path = Path(url) / DB_FILE
        self.visibility_timeout_s = settings.visibility_timeout_s
        self.synchronous = settings.options.get("synchronous", "FULL").upper()
        if self.synchronous not in _SYNC_MODES:
            raise ValueError(f"local transport: synchronous must be one of {_SYNC_MODES}")
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[_Op, bool, asyncio.Future[Any]]] = []
        self._sync_now = ""
        self._flushing = False
        self._closed = True
        self._consumers: set[_Consumer] = set()
        self._held: dict[int, _Lease] = {}  # yielded, unsettled: returned on close()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._bell = Doorbell(self.path, self._wake)

    # --- lifecycle ---

    @override
    async def connect(self) -> None:
        if not self._closed:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asya-local")
        self._closed = False
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each transaction is explicit and short.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(sql.SCHEMA)
        self._conn = conn

    @override
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        # Like an AMQP channel closing: what this process leased and never settled
        # goes back at once instead of waiting out the lease.
        held, self._held = list(self._held.values()), {}
        unyielded = [_Lease(r[0], r[3], c) for c in self._consumers for r in c.claimed]
        for consumer in self._consumers:
            consumer.claimed.clear()
            consumer.wake()
        if held or unyielded:

            def release(conn: sqlite3.Connection) -> int:
                return sql.release(conn, held, undo_receive=False) + sql.release(conn, unyielded, undo_receive=True)

            try:
                await self._write(release, closing=True)
            except Exception as exc:  # they come back when their leases run out instead
                ids = ", ".join(str(lease.id) for lease in held + unyielded)
                log.warning("local transport: could not return leased messages %s on close (%r)", ids, exc)
        self._bell.close()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_db)
            executor.shutdown(wait=True)

    def _close_db(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- queues ---

    @override
    async def ensure_queue(self, queue: str) -> None:
        await self._write(lambda c: sql.ensure(c, queue), durable=True)

    @override
    async def delete_queue(self, queue: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE queue = ?", (queue,))
            conn.execute("DELETE FROM queues WHERE name = ?", (queue,))

        await self._write(delete, durable=True)

    @override
    async def queue_depth(self, queue: str) -> int:
        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ? AND visible_at <= ?", (queue, time.time())
            ).fetchone()
            return int(row[0])

        return await self._run(lambda: count(self._db()))

    # --- publish ---

    @override
    async def publish(
        self, queue: str, body: bytes, *, headers: Mapping[str, Any] | None = None, delay_s: float = 0.0
    ) -> None:
        if delay_s < 0:
            raise TransportFeatureNotSupported(f"negative delay {delay_s}")
        encoded = json.dumps(dict(headers or {}), separators=(",", ":"))

        def insert(conn: sqlite3.Connection) -> list[str]:
            sql.ensure(conn, queue)
            conn.execute(
                "INSERT INTO messages (queue, body, headers, visible_at) VALUES (?, ?, ?, ?)",
                (queue, bytes(body), encoded, time.time() + delay_s),
            )
            return [row[0] for row in conn.execute("SELECT name FROM listeners WHERE queue = ?", (queue,))]

        try:  # bounded: another process may hold the write lock for long (busy_timeout is 30 s)
            async with asyncio.timeout(self.settings.publish_timeout_s):  # no task per publish, unlike wait_for
                listeners = await self._write(insert, durable=True)
        except TimeoutError as exc:
            raise TransportError(
                f"local transport: publish to {queue!r} not committed within {self.settings.publish_timeout_s}s"
            ) from exc
        if delay_s == 0:
            self._wake(queue)
            dead = self._bell.ring(listeners, queue)
            if dead:
                await self._write(lambda c: sql.forget_listeners(c, dead))

    # --- consume ---

    @override
    async def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[Delivery]:
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        consumer = _Consumer(self)
        self._consumers.add(consumer)
        delay = _POLL_MIN_S
        self._bell.listen()
        bell = self._bell.name
        await self._write(
            lambda c: c.execute("INSERT OR IGNORE INTO listeners (name, queue) VALUES (?, ?)", (bell, queue))
        )
        try:
            while not self._closed:
                free = prefetch - len(consumer.outstanding)
                if free <= 0:
                    consumer.slot_freed = asyncio.get_running_loop().create_future()
                    await consumer.slot_freed
                    continue
                try:
                    claimed = await self._write(
                        functools.partial(sql.claim, queue=queue, limit=free, lease_s=self.visibility_timeout_s)
                    )
                except RuntimeError:
                    if self._closed:  # closed while the claim was queued: the iteration simply ends
                        return
                    raise
                consumer.claimed = claimed
                if not claimed:
                    await self._nap(queue, delay)
                    delay = min(delay * 2, _POLL_MAX_S)
                    continue
                delay = _POLL_MIN_S
                while claimed and not self._closed:
                    row_id, body, headers, receive_count = claimed.pop(0)
                    lease = _Lease(row_id, receive_count, consumer)
                    consumer.outstanding[row_id] = self._held[row_id] = lease
                    yield Delivery(
                        body=body,
                        queue=queue,
                        attempt=receive_count,
                        headers=json.loads(headers),
                        raw=lease,
                        settle=consumer,
                        message_id=str(row_id),
                    )
        finally:
            self._consumers.discard(consumer)
            if consumer.claimed and not self._closed:
                # Leased in a batch but never handed out: give back without counting a receive.
                leases = [_Lease(r[0], r[3], consumer) for r in consumer.claimed]
                try:
                    await self._write(lambda c: sql.release(c, leases, undo_receive=True))
                except Exception as exc:  # they come back when their leases run out instead
                    ids = ", ".join(str(lease.id) for lease in leases)
                    log.warning("local transport: could not give back messages %s (%r)", ids, exc)
            # Deliveries already yielded stay settle-able: the sidecar drains in-flight work
            # after it stops iterating.

    async def _nap(self, queue: str, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when this transport publishes to ``queue``."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiters = self._waiters.setdefault(queue, set())
        waiters.add(waiter)
        handle = loop.call_later(seconds, _resolve, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            waiters.discard(waiter)

    def _wake(self, queue: str) -> None:
        for waiter in self._waiters.get(queue, ()):
            _resolve(waiter)

    # --- settling (called through Delivery) ---

    async def _settle(self, delivery: Delivery, fn: Callable[[sqlite3.Connection, _Lease], int], what: str) -> None:
        lease: _Lease = delivery.raw
        if what != "extend":
            lease.consumer.outstanding.pop(lease.id, None)
            lease.consumer.wake()
            self._held.pop(lease.id, None)
        if self._closed:
            log.warning("local transport closed before %s of message %d; it will be redelivered", what, lease.id)
            return
        if not await self._write(lambda conn: fn(conn, lease)):
            log.warning("local transport: lease on message %d expired before %s", lease.id, what)

    # --- the SQLite thread ---

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("local transport is not connected")
        return self._conn

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise RuntimeError("local transport is not connected")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:  # the queue file is our broker: its failures are broker failures
            raise TransportError(f"local transport ({self.path}): {exc!r}") from exc

    async def _write(self, op: _Op, *, durable: bool = False, closing: bool = False) -> Any:
        """Run ``op`` inside a write transaction, batched with other writes queued meanwhile.

        ``durable`` writes (publish, queue changes) are fsync'd before returning. Claims and
        settles are not: losing one to a power cut only means a redelivery, which
        at-least-once allows, and it saves an fsync per ack.
        """
        if self._closed and not closing:
            raise RuntimeError("local transport is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, durable, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    durable = any(d for _, d, _ in batch)
                    results = await self._run(functools.partial(self._commit, [op for op, _, _ in batch], durable))
                except BaseException as exc:  # hand every caller the failure, then stop
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, _, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushing = False

    def _commit(self, ops: list[_Op], durable: bool) -> list[Any]:
        conn = self._db()
        mode = self.synchronous if durable or self.synchronous != "FULL" else "NORMAL"
        if mode != self._sync_now:  # WAL: FULL fsyncs at commit, NORMAL only at checkpoints
            conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync_now = mode
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [op(conn) for op in ops]
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return results


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
