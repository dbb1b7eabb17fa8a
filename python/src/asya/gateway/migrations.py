"""Ordered schema migrations for the gateway's PostgreSQL database.

``python -m asya.gateway migrate`` (and the chart's migration Job) runs
``migrate(dsn)``: every migration not yet recorded in ``schema_migrations`` is
applied in version order, all in one transaction under a transaction-scoped
advisory lock. So two migrators started at once (two replicas, a Helm hook and
an Argo CD sync) serialise on the lock, the second finds nothing left to do, and
a failing migration leaves the schema exactly as it was.

A migration, once released, is never edited: changes go in a new, higher
version. ``MIGRATIONS`` is append-only.

Schema notes (why the columns are shaped so):
- ``jobs.seq`` is a bigserial used only as the keyset of ``GET /jobs`` pagination
  (``ORDER BY seq DESC``): ids are client- or producer-chosen strings with no order.
- ``job_events.id`` is the SSE event id. Every event insert first updates its
  job's row, so the row lock orders the id allocation and the commits of one job's
  events the same way: a reader that saw event N has already seen every event
  < N of that job, and ``Last-Event-ID`` resumes without a gap.
- ``jobs.request_hash`` is the SHA-256 of the create request body; with
  ``idempotency_key`` it tells a retried request from a different one.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger("asya.gateway.migrations")

# Arbitrary constant: the key of the advisory lock every migrator takes.
_LOCK_KEY = 0x41_5359_4147_5701

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "jobs and events",
        """
        CREATE TABLE jobs (
            id              text PRIMARY KEY,
            seq             bigserial NOT NULL UNIQUE,
            parent_id       text,
            status          text NOT NULL,
            origin          text NOT NULL,
            tool            text,
            route           jsonb,
            payload         jsonb,
            result          jsonb,
            error           jsonb,
            progress        jsonb,
            idempotency_key text UNIQUE,
            request_hash    text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz
        );
        CREATE INDEX jobs_status_seq ON jobs (status, seq);
        CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
        CREATE TABLE job_events (
            id          bigserial PRIMARY KEY,
            job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            kind        text NOT NULL,
            data        jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX job_events_job_id ON job_events (job_id, id);
        """,
    ),
    (
        2,
        "cancellation feed",
        # Sidecars poll ``GET /internal/cancellations`` every half second: these partial indexes keep each
        # poll an index range scan over cancellations only, whatever the size of job_events. ``id`` is the
        # feed's cursor; ``created_at`` serves the first page (the last hour) and the re-read window that
        # covers a cancellation committed after a higher id was already read.
        """
        CREATE INDEX job_events_cancelled_id ON job_events (id)
            WHERE kind = 'final' AND data->>'status' = 'cancelled';
        CREATE INDEX job_events_cancelled_at ON job_events (created_at)
            WHERE kind = 'final' AND data->>'status' = 'cancelled';
        """,
    ),
    (
        3,
        "fan-out children",
        # The ids a fan-out progress report listed (see parents.py); children that report with a
        # parent_id are found through jobs_parent. No foreign key on child_id: a child's row appears
        # only when its first report arrives, which may be long after (or before) this row.
        """
        CREATE TABLE job_children (
            parent_id   text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            child_id    text NOT NULL,
            PRIMARY KEY (parent_id, child_id)
        );
        """,
    ),
    (
        4,
        "jobs by tool",
        # ``GET /jobs?tool=`` pages newest first within one tool, like ``jobs_status_seq`` for status.
        """
        CREATE INDEX jobs_tool_seq ON jobs (tool, seq) WHERE tool IS NOT NULL;
        """,
    ),
]


async def migrate(dsn: str) -> list[int]:
    """Apply the missing migrations; the versions applied now (empty when the schema was current)."""
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        return await apply(conn)
    finally:
        await conn.close()


async def apply(conn: asyncpg.Connection) -> list[int]:
    versions = [v for v, _, _ in MIGRATIONS]
    if versions != sorted(set(versions)):
        raise RuntimeError("MIGRATIONS must have unique, increasing versions")
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(version)
            log.info("applied migration %d (%s)", version, name)
    return applied


async def current_version(conn: asyncpg.Connection) -> int:
    """Highest applied version, 0 for an empty database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


def latest_version() -> int:
    return MIGRATIONS[-1][0]
