"""Server-Sent Events of a job stream, parsed line by line.

The gateway's stream (``GET /jobs/{id}/stream``) sends ``id``, ``event``,
``data`` (one JSON document) and, once, ``retry``; comment lines are
keep-alives. ``EventParser`` is fed lines as the HTTP response yields them and
hands back complete events, so ``Client.watch`` can remember the id of every
event it passed on and resume after exactly that one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from asya.client.errors import ClientError

FINAL = "final"
"""The last event of every job stream: the job ended (succeeded, failed or cancelled)."""


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a job: ``id`` orders a job's events (the SSE id), ``kind`` is the SSE event name."""

    id: int
    kind: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.kind == FINAL

    @property
    def status(self) -> str | None:
        value = self.data.get("status")
        return value if isinstance(value, str) else None


class EventParser:
    """Turns SSE lines into ``Event``s; remembers the server's ``retry`` advice."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self.keepalives = 0
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Take one line (without its newline); an ``Event`` when ``line`` ended one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.keepalives += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        elif name in ("id", "event"):
            self._fields[name] = value
        return None

    def _dispatch(self) -> Event | None:
        fields, data = self._fields, self._data
        self._fields, self._data = {}, []
        if not data:
            return None
        raw_id = fields.get("id", "")
        if not raw_id.isdigit():
            raise ClientError(f"the job stream sent an event without a numeric id ({raw_id!r}): not an Asya gateway?")
        try:
            payload = json.loads("\n".join(data))
        except ValueError as exc:
            raise ClientError(f"the job stream sent event {raw_id} with data that is not JSON: {exc}") from None
        return Event(
            id=int(raw_id),
            kind=fields.get("event", "message"),
            data=payload if isinstance(payload, dict) else {"value": payload},
        )
