"""How many envelopes still sit in the pipeline's queues, for ``asya dev run``'s completion check.

``Transport.queue_depth`` counts only messages a consumer could take *now*: on
RabbitMQ a passive declare reports ready messages (not the unacknowledged ones
a sidecar holds), on the local transport rows whose ``visible_at`` has passed
(not leased or delayed ones). That is right for autoscaling and wrong for
"is anything left". So:

- local: count every row of the queue in the SQLite file (ready, leased, delayed);
  ``sees_in_flight`` is True;
- other transports: ``queue_depth`` (ready only); ``sees_in_flight`` is False,
  and ``devrun`` makes up for it by checking again once every consumer is
  stopped, when nothing can be in flight and ready means everything.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from asya import transports
from asya.transports.local import DB_FILE

log = logging.getLogger("asya.cli.drain")


class QueueProbe:
    """Counts what is left in a set of queues; ``None`` when the broker cannot tell right now."""

    def __init__(self, transport: transports.Transport, kind: str, url: str) -> None:
        self.transport = transport
        self.local_db: Path | None = Path(url.removeprefix("file://")) / DB_FILE if kind == "local" else None
        self.sees_in_flight = self.local_db is not None

    async def pending(self, queues: Sequence[str]) -> int | None:
        try:
            if self.local_db is not None:
                return await asyncio.to_thread(_count_local, self.local_db, list(queues))
            total = 0
            for queue in queues:
                total += await self.transport.queue_depth(queue)
            return total
        except Exception as exc:  # a broker restarting: "unknown" is never "drained"
            log.debug("queue check failed: %r", exc)
            return None


def _count_local(db: Path, queues: list[str]) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)
    try:
        marks = ",".join("?" * len(queues))
        row = conn.execute(f"SELECT COUNT(*) FROM messages WHERE queue IN ({marks})", queues).fetchone()
        return int(row[0])
    finally:
        conn.close()
