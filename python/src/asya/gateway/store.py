"""Jobs and their events in PostgreSQL (the schema is in ``migrations.py``).

Every write that adds an event locks the job's row first (``FOR UPDATE`` or the
insert itself), then inserts the event and ``pg_notify``s the job id on
``CHANNEL`` in the same transaction. The row lock makes one job's event ids
increase in commit order, so "every event with id > N" is always complete for
a reader who saw N; the notification is delivered only when the event is
committed and visible, to every gateway replica listening.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from asya.gateway import parents, steps
from asya.gateway.metrics import GatewayMetrics

CHANNEL = "asya_job_events"

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATUSES = frozenset({QUEUED, RUNNING, RETRYING, *TERMINAL})

FINAL_EVENT = "final"
"""Kind of the last event of a job; a stream ends after it."""

ORIGIN_GATEWAY = "gateway"
ORIGIN_INJECTED = "injected"
"""First seen in a report: published to a queue by someone else."""
ORIGIN_FANOUT = "fanout"
"""First seen in a report, with a parent job this gateway knows."""

T = TypeVar("T")

DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # seen when the server shuts down under a query in flight
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
"""What asyncpg raises while PostgreSQL is down, restarting or unreachable: worth a retry, not a bug."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key is already bound to a different request."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=_dumps, decoder=json.loads, schema="pg_catalog")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=_init_connection, reset=_keep_session, timeout=30
    )
    assert pool is not None
    return pool


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's reset query (one round trip per request).

    Safe because nothing here leaves session state behind: no ``SET``, no ``LISTEN`` (the hub has
    its own connection), advisory locks only transaction-scoped, no cursors outside a
    transaction. asyncpg still rolls back a transaction left open before calling this.
    """


async def _add_event(conn: asyncpg.Connection, job_id: str, kind: str, data: Mapping[str, Any]) -> int:
    # One round trip for both (every submission and report comes here); NOTIFY is sent at commit anyway.
    event_id = await conn.fetchval(
        """WITH e AS (INSERT INTO job_events (job_id, kind, data) VALUES ($1, $2, $3) RETURNING id)
           SELECT e.id FROM e, pg_notify($4, $1)""",
        job_id,
        kind,
        dict(data),
        CHANNEL,
    )
    return int(event_id)


def job_view(row: Mapping[str, Any], *, with_payload: bool = False) -> dict[str, Any]:
    """The public JSON shape of a job row."""
    view: dict[str, Any] = {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "status": row["status"],
        "origin": row["origin"],
        "tool": row["tool"],
        "route": row["route"],
        "progress": row["progress"],
        "result": row["result"],
        "error": row["error"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "finished_at": _iso(row["finished_at"]),
    }
    if with_payload:
        view["payload"] = row["payload"]
    return view


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class JobStore:
    def __init__(self, pool: asyncpg.Pool, metrics: GatewayMetrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics or GatewayMetrics()

    async def create(
        self,
        envelope: Mapping[str, Any],
        *,
        tool: str | None,
        idempotency_key: str | None,
        request_hash: str,
        publish: Callable[[], Awaitable[None]],
    ) -> tuple[dict[str, Any], bool]:
        """Store a new job for ``envelope`` and run ``publish`` before committing; (job, created).

        The transaction stays open across the publish, so a job row exists only
        for an envelope the broker confirmed; a failed publish leaves nothing
        behind and the same Idempotency-Key may be retried. A concurrent request
        with the same key waits on the unique index until this one ends.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO jobs (id, parent_id, status, origin, tool, route, payload, idempotency_key, request_hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (idempotency_key) DO NOTHING
                   RETURNING *""",
                envelope["id"],
                envelope.get("parent_id"),
                QUEUED,
                ORIGIN_GATEWAY,
                tool,
                envelope["route"],
                envelope["payload"],
                idempotency_key,
                request_hash,
            )
            if row is None:
                existing = await conn.fetchrow("SELECT * FROM jobs WHERE idempotency_key = $1", idempotency_key)
                assert existing is not None  # the conflicting row is committed: we waited for it
                if existing["request_hash"] != request_hash:
                    raise IdempotencyConflict(existing["id"])
                return job_view(existing), False
            await _add_event(conn, row["id"], "created", {"status": QUEUED, "route": envelope["route"]})
            await publish()
        self.metrics.job_created(tool)
        return job_view(row), True

    async def get(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        return job_view(row, with_payload=True) if row is not None else None

    async def page(
        self, *, status: str | None, limit: int, cursor: int | None, tool: str | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; (jobs, next cursor or None). The cursor is the last row's ``seq``."""
        rows = await self.pool.fetch(
            """SELECT * FROM jobs
               WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR seq < $2)
                 AND ($4::text IS NULL OR tool = $4)
               ORDER BY seq DESC LIMIT $3""",
            status,
            cursor,
            limit + 1,
            tool,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [job_view(r) for r in rows], (int(rows[-1]["seq"]) if more and rows else None)

    async def events_after(self, job_id: str, after: int, limit: int = 500) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT id, kind, data FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                job_id,
                after,
                limit,
            )
        )

    async def exists(self, job_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)", job_id))

    async def report(self, kind: str, job_id: str, report: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a sidecar/end-actor report: ``kind`` is ``progress`` or ``final``.

        An unknown id becomes a job (``fanout`` when its parent is known, else
        ``injected``). A report for a job that already ended adds nothing: final
        reports are at-least-once (an end actor that crashes before its ack
        reports again), and late progress must not reopen a finished job.
        """
        parent_id = report.get("parent_id") if isinstance(report.get("parent_id"), str) else None
        async with self.pool.acquire() as conn, conn.transaction():
            if parents.children_of(kind, job_id, report):
                await parents.lock_children(conn, job_id)  # before the row: the lock order parents.py needs
            row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1 FOR UPDATE", job_id)
            if row is None:
                origin = ORIGIN_INJECTED
                if parent_id and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)", parent_id):
                    origin = ORIGIN_FANOUT
                await conn.execute(
                    """INSERT INTO jobs (id, parent_id, status, origin) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (id) DO NOTHING""",
                    job_id,
                    parent_id,
                    RUNNING,
                    origin,
                )
                row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1 FOR UPDATE", job_id)
                assert row is not None
            if kind == "progress" and report.get("status") == CANCELLED:
                return await _dropped(conn, row, job_id, report)
            if row["status"] in TERMINAL:
                return {"job": job_view(row), "applied": False}
            if kind == "final" and report.get("status") == SUCCEEDED:
                # before the final event: a step report that arrives after it would be ignored
                await steps.fill_in(conn, job_id, report, _add_event, child=row["parent_id"] is not None)
            event_kind, row = await _apply(conn, kind, job_id, report)
            event_id = await _add_event(conn, job_id, event_kind, report)
            await parents.after_report(conn, kind, row, report, _add_event)
        if row["status"] in TERMINAL:
            self.metrics.job_finished(row)
        return {"job": job_view(row), "applied": True, "event_id": event_id}

    async def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Mark a job cancelled (None if unknown); a job that already ended keeps its status."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1 FOR UPDATE", job_id)
            if row is None:
                return None
            if row["status"] in TERMINAL:
                return job_view(row)
            row = await conn.fetchrow(
                """UPDATE jobs SET status = $2, updated_at = now(), finished_at = now()
                   WHERE id = $1 RETURNING *""",
                job_id,
                CANCELLED,
            )
            assert row is not None
            await _add_event(conn, job_id, FINAL_EVENT, {"id": job_id, "status": CANCELLED})
            await parents.ended(conn, row, _add_event)  # a cancelled child counts at its parent
        self.metrics.job_finished(row)
        return job_view(row)

    async def cancellations(self, after: int | None, limit: int) -> tuple[list[str], int, bool]:
        """Ids of jobs cancelled after cursor ``after`` (the feed sidecars poll); (ids, new cursor, more).

        The cursor is the id of the ``final`` event that cancelled the job. Event ids are allocated
        before commit, so a cancellation may become visible after a higher id was already read: every
        answer also repeats the cancellations of the last ``_FEED_REREAD`` (pollers keep a set, so a
        repeat costs nothing and a late commit is not skipped). Without ``after`` the feed starts
        ``_FEED_START`` ago, which is as long as sidecars remember a cancellation.
        """
        if after is None:
            rows = await self.pool.fetch(
                f"""SELECT id, job_id FROM job_events WHERE {_CANCELLED_EVENT}
                    AND created_at > now() - interval '{_FEED_START}' ORDER BY id LIMIT $1""",
                limit,
            )
        else:
            rows = await self.pool.fetch(
                f"SELECT id, job_id FROM job_events WHERE {_CANCELLED_EVENT} AND id > $1 ORDER BY id LIMIT $2",
                after,
                limit,
            )
        more = len(rows) >= limit
        ids = [r["job_id"] for r in rows]
        if rows:
            cursor = int(rows[-1]["id"])
        elif after is not None:
            cursor = after
        else:
            cursor = int(
                await self.pool.fetchval(f"SELECT coalesce(max(id), 0) FROM job_events WHERE {_CANCELLED_EVENT}")
            )
        recent = await self.pool.fetch(
            f"""SELECT job_id FROM job_events WHERE {_CANCELLED_EVENT}
                AND created_at > now() - interval '{_FEED_REREAD}' AND id <= $1 LIMIT $2""",
            cursor,
            limit,
        )
        seen = set(ids)
        ids += [r["job_id"] for r in recent if r["job_id"] not in seen]
        return ids, cursor, more


_CANCELLED_EVENT = "kind = 'final' AND data->>'status' = 'cancelled'"
"""The predicate of migration 2's partial indexes, spelled the same so the planner uses them."""
_FEED_START = "1 hour"
_FEED_REREAD = "5 seconds"


async def _dropped(
    conn: asyncpg.Connection, row: asyncpg.Record, job_id: str, report: Mapping[str, Any]
) -> dict[str, Any]:
    """A sidecar dropped this job's envelope because the job, its parent or an ancestor was cancelled.

    On the cancelled job itself the drop is recorded as a ``dropped`` event after its final one (the
    status stays; ``progress`` says where the envelope stopped). A job not yet ended (a fan-out child of a
    cancelled parent) becomes cancelled with it. A job that ended otherwise is left alone.
    """
    progress = {k: report.get(k) for k in ("actor", "step", "steps", "status") if k in report}
    if row["status"] == CANCELLED:
        row = await conn.fetchrow(
            "UPDATE jobs SET progress = $2, updated_at = now() WHERE id = $1 RETURNING *", job_id, progress
        )
        kind = "dropped"
    elif row["status"] in TERMINAL:
        return {"job": job_view(row), "applied": False}
    else:
        row = await conn.fetchrow(
            """UPDATE jobs SET status = $2, progress = $3, updated_at = now(), finished_at = now()
               WHERE id = $1 RETURNING *""",
            job_id,
            CANCELLED,
            progress,
        )
        kind = FINAL_EVENT
    assert row is not None
    event_id = await _add_event(conn, job_id, kind, report)
    if kind == FINAL_EVENT:
        await parents.ended(conn, row, _add_event)
    return {"job": job_view(row), "applied": True, "event_id": event_id}


async def _apply(
    conn: asyncpg.Connection, kind: str, job_id: str, report: Mapping[str, Any]
) -> tuple[str, asyncpg.Record]:
    """Update the locked job row for one report; (event kind, updated row)."""
    status = report.get("status")
    if kind == "final" and status in (SUCCEEDED, FAILED):
        result = report.get("result") if status == SUCCEEDED else None
        error = None if status == SUCCEEDED else {k: report.get(k) for k in ("reason", "error", "actor", "uri")}
        row = await conn.fetchrow(
            """UPDATE jobs SET status = $2, result = $3, error = $4, updated_at = now(), finished_at = now()
               WHERE id = $1 RETURNING *""",
            job_id,
            status,
            result,
            error,
        )
        assert row is not None
        return FINAL_EVENT, row
    new_status, event_kind = (RETRYING, "retrying") if kind == "final" else (RUNNING, "progress")
    progress = {k: report.get(k) for k in ("actor", "step", "steps", "status") if k in report}
    row = await conn.fetchrow(
        "UPDATE jobs SET status = $2, progress = $3, updated_at = now() WHERE id = $1 RETURNING *",
        job_id,
        new_status,
        progress,
    )
    assert row is not None
    return event_kind, row
