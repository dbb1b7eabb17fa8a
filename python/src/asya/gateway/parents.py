"""Fan-out parents: a job that split into children ends when its last child ends.

How the gateway learns a parent's children: the sidecar's progress report for
the step that fanned out lists the ids it published (``outputs``); when that
list does not contain the job's own id, the job has split and those ids are
its children (``job_children``). Children that report with ``parent_id`` =
the job count too, so the set is the union of both: a redelivered fan-out step
adds the same ``<id>.<n>`` ids again (nothing changes) and reports that arrive
before the fan-out report are not lost. Until the fan-out report has arrived
the total is unknown and the parent does not complete.

A child has ended when its status is terminal (``succeeded``, ``failed``,
``cancelled``); ``retrying`` has not. A child that fans out again is itself a
parent and ends when its own children have, which may in turn end its parent.
The parent succeeds when every child succeeded, else it fails naming the
children that did not. A job's own final report still ends it as before
(first ending wins): with a fan-out, happy-end sees only the children, so the
parent's own final report comes only from an attempt that did not fan out.

Concurrency: every change that can complete parent ``P`` (a child of ``P``
ending, ``P``'s fan-out report) holds a transaction-scoped advisory lock keyed
on ``P``'s id, then ``P``'s row, and only then counts ``P``'s children. The
lock on the id (not only the row) matters because ``P``'s row may be created
by its own fan-out report in a transaction racing a child's last report. Locks
are always taken going up the tree (a job's row, then its parent's id lock and
row, then the grandparent's), never down, so two such transactions never wait
on each other in a cycle. Counting after the locks, in a fresh statement, means
the last of several racing children sees every other child's end: each child's
update committed before the next transaction could take the parent's lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
"""The same statuses as ``store.TERMINAL`` (spelled out again here: the store imports this module)."""

FAILED_IDS_SHOWN = 20
"""How many failed children a failed parent's error names (the rest are counted)."""

# The seed of the 64-bit id hash: two ids sharing a lock would only serialise, but could then
# wait on each other across two trees, so the key space is made too large for that to happen.
_LOCK_SEED = 0x4153_5941  # "ASYA"

_COUNT = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE j.status IN ('succeeded', 'failed', 'cancelled')) AS ended,
       count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE j.status = 'failed') AS failed,
       count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled
FROM (SELECT child_id AS id FROM job_children WHERE parent_id = $1
      UNION SELECT id FROM jobs WHERE parent_id = $1) c
LEFT JOIN jobs j ON j.id = c.id
"""

_NOT_SUCCEEDED = """
SELECT c.id FROM (SELECT child_id AS id FROM job_children WHERE parent_id = $1
                  UNION SELECT id FROM jobs WHERE parent_id = $1) c
JOIN jobs j ON j.id = c.id
WHERE j.status IN ('failed', 'cancelled') ORDER BY c.id LIMIT $2
"""

AddEvent = Callable[[asyncpg.Connection, str, str, Mapping[str, Any]], Awaitable[int]]
"""``store._add_event``, passed in so that this module does not import the store (which imports it)."""


def children_of(kind: str, job_id: str, report: Mapping[str, Any]) -> list[str]:
    """The ids a progress report says this job split into (empty when it did not fan out)."""
    outputs = report.get("outputs")
    if kind != "progress" or not isinstance(outputs, list):
        return []
    ids = [o for o in outputs if isinstance(o, str) and o]
    if not ids or job_id in ids:
        return []  # a 1:1 step (or one that kept its own id) continues as this job
    return sorted(set(ids))


async def lock_children(conn: asyncpg.Connection, job_id: str) -> None:
    """Serialise every transaction that may complete ``job_id`` as a parent (see the module docstring)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", job_id, _LOCK_SEED)


async def after_report(
    conn: asyncpg.Connection, kind: str, row: Mapping[str, Any], report: Mapping[str, Any], add_event: AddEvent
) -> None:
    """Parent bookkeeping for a report just applied to ``row`` (locked; ``lock_children`` taken first if it fanned out)."""
    if row["status"] in TERMINAL:
        await ended(conn, row, add_event)
        return
    children = children_of(kind, row["id"], report)
    if not children:
        return
    await conn.execute(
        """INSERT INTO job_children (parent_id, child_id) SELECT $1, unnest($2::text[])
           ON CONFLICT DO NOTHING""",
        row["id"],
        children,
    )
    done = await _settle(conn, row, add_event)  # children that ended before this report arrived count now
    if done is not None:
        await ended(conn, done, add_event)


async def ended(conn: asyncpg.Connection, row: Mapping[str, Any], add_event: AddEvent) -> None:
    """``row`` (locked) has just reached a terminal status: count it at its parent, completing it if last."""
    while row["parent_id"] is not None:
        parent_id = row["parent_id"]
        await lock_children(conn, parent_id)
        parent = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1 FOR UPDATE", parent_id)
        if parent is None:
            return  # an orphan (its parent was never a job here): nothing to complete
        done = await _settle(conn, parent, add_event)
        if done is None:
            return
        row = done


async def _settle(conn: asyncpg.Connection, parent: Mapping[str, Any], add_event: AddEvent) -> Mapping[str, Any] | None:
    """Count ``parent``'s children and publish the count; the completed parent row when this was the last one."""
    if parent["status"] in TERMINAL:
        return None
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM job_children WHERE parent_id = $1)", parent["id"]):
        return None  # it has not fanned out (or its fan-out report is still to come): no total yet
    counts = dict(await conn.fetchrow(_COUNT, parent["id"]))
    counts = {k: int(v) for k, v in counts.items()}
    progress = {**(parent["progress"] or {}), "children": counts}
    if counts["ended"] < counts["total"]:
        await conn.execute("UPDATE jobs SET progress = $2, updated_at = now() WHERE id = $1", parent["id"], progress)
        await add_event(conn, parent["id"], "progress", {"id": parent["id"], "children": counts})
        return None
    if counts["succeeded"] == counts["total"]:
        status, result, error = "succeeded", {"children": counts}, None
    else:
        not_ok = [r["id"] for r in await conn.fetch(_NOT_SUCCEEDED, parent["id"], FAILED_IDS_SHOWN)]
        failed = counts["failed"] + counts["cancelled"]
        status, result = "failed", None
        error = {
            "reason": "children_failed",
            "message": f"{failed} of {counts['total']} fan-out children did not succeed",
            "children": not_ok,
        }
    done = await conn.fetchrow(
        """UPDATE jobs SET status = $2, result = $3, error = $4, progress = $5, updated_at = now(),
                  finished_at = now()
           WHERE id = $1 RETURNING *""",
        parent["id"],
        status,
        result,
        error,
        progress,
    )
    final: dict[str, Any] = {"id": parent["id"], "status": status, "children": counts}
    if error is not None:
        final["error"] = error
    await add_event(conn, parent["id"], "final", final)
    assert done is not None
    row: Mapping[str, Any] = done
    return row
