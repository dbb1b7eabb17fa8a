"""SQL of the ``local`` transport: the schema and the statements it runs.

Every function here runs on the transport's SQLite thread, inside a write
transaction opened by ``LocalTransport._commit``; ``local.py`` keeps the
asyncio side (batching, leases, waking consumers).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Protocol


class Lease(Protocol):
    """What a settle needs to know about a delivery: its row and which receive it was."""

    id: int
    receive_count: int


SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    -- AUTOINCREMENT: ids are never reused, so (id, receive_count) names one lease forever
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS listeners (
    -- doorbell sockets of consuming processes, rung by publishers (see _doorbell.py)
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    PRIMARY KEY (queue, name)
);
"""


def ensure(conn: sqlite3.Connection, queue: str) -> None:
    conn.execute("INSERT OR IGNORE INTO queues (name, created_at) VALUES (?, ?)", (queue, time.time()))


def claim(conn: sqlite3.Connection, queue: str, limit: int, lease_s: float) -> list[tuple[int, bytes, str, int]]:
    now = time.time()
    rows = conn.execute(
        "UPDATE messages SET visible_at = ?, receive_count = receive_count + 1"
        " WHERE id IN (SELECT id FROM messages WHERE queue = ? AND visible_at <= ?"
        " ORDER BY visible_at, id LIMIT ?)"
        " RETURNING id, body, headers, receive_count",
        (now + lease_s, queue, now, limit),
    ).fetchall()
    rows.sort()  # RETURNING order is unspecified; ids are publish order
    return rows


def delete(conn: sqlite3.Connection, lease: Lease) -> int:
    return conn.execute(
        "DELETE FROM messages WHERE id = ? AND receive_count = ?", (lease.id, lease.receive_count)
    ).rowcount


def extend(conn: sqlite3.Connection, lease: Lease, *, seconds: float) -> int:
    return conn.execute(
        "UPDATE messages SET visible_at = ? WHERE id = ? AND receive_count = ?",
        (time.time() + seconds, lease.id, lease.receive_count),
    ).rowcount


def requeue(conn: sqlite3.Connection, lease: Lease) -> int:
    return release(conn, [lease], undo_receive=False)


def release(conn: sqlite3.Connection, leases: Sequence[Lease], *, undo_receive: bool) -> int:
    undo = 1 if undo_receive else 0
    changed = 0
    for lease in leases:
        changed += conn.execute(
            "UPDATE messages SET visible_at = ?, receive_count = receive_count - ? WHERE id = ? AND receive_count = ?",
            (time.time(), undo, lease.id, lease.receive_count),
        ).rowcount
    return changed


def forget_listeners(conn: sqlite3.Connection, names: list[str]) -> None:
    conn.executemany("DELETE FROM listeners WHERE name = ?", [(n,) for n in names])
