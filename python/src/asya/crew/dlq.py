"""Dead letters: list, show and replay what error-end gave up on (``asya dlq ...``).

The CLI's ``dlq`` command group calls these plain functions; tests call them
directly. The record of truth is storage (``errors/<YYYY-MM-DD>/<actor>/<id>.json``,
written by ``deadletter.dead_letter``), not the ``asya-dlq`` queue: a queue
cannot be browsed without taking messages, while storage can be listed, read
and audited. The queue is a notification stream for alerting and external
consumers.

Replay rebuilds the original envelope (``payload.original_payload``, or the
raw body of a message that once failed to parse if it now reads as an
envelope), resets the retry budget, and publishes it to the actor at
``route.current``. The record then moves to ``replayed/...`` (same layout), so
``list`` shows only what still needs attention and every envelope is counted
once: as a result, as a dead letter, or as in flight again. If the envelope
fails again, error-end files a new dead letter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from asya import storage, transports
from asya.contracts.envelope import (
    Envelope,
    encode_envelope,
    next_destination,
    queue_name,
    stamp_published,
    validate_envelope,
)
from asya.contracts.errors import EnvelopeError
from asya.crew import retrying
from asya.engine import failures

REPLAYED_PREFIX = "replayed/"
"""Where replayed dead letters are kept for audit: ``replayed/<YYYY-MM-DD>/<actor>/<id>.json``."""
_READ_CONCURRENCY = 16


@dataclasses.dataclass(frozen=True)
class DeadLetterInfo:
    """One line of ``asya dlq list``."""

    key: str
    """Storage key (``errors/<day>/<actor>/<id>.json``): what ``show`` and ``replay`` accept."""
    id: str
    actor: str
    """The actor that failed (folder name)."""
    day: str
    reason: str | None
    """``x-asya-dlq-reason``: non_retryable, budget_exhausted, crash_loop, unparsable, malformed."""
    error: str | None
    """Error code (processing_error, msg_parsing_error, ...)."""
    message: str | None
    type: str | None
    at: float | None
    """Unix time it was dead-lettered."""


@dataclasses.dataclass(frozen=True)
class ReplayOutcome:
    """What ``replay`` did with one dead letter."""

    key: str
    id: str
    queue: str | None
    """Queue the envelope was sent to; None when it could not be replayed."""
    problem: str | None = None


class DeadLetterNotFound(LookupError):
    """No dead letter matches the id or key given."""


def _info(key: str, record: dict[str, Any]) -> DeadLetterInfo:
    parts = key.split("/")
    day, actor = (parts[1], parts[2]) if len(parts) >= 4 else ("", "")
    summary = failures.summary(record)
    headers = record.get("headers") if isinstance(record.get("headers"), dict) else {}
    assert isinstance(headers, dict)
    at = headers.get("x-asya-dlq-at")
    return DeadLetterInfo(
        key=key,
        id=str(record.get("id", "")),
        actor=actor,
        day=day,
        reason=headers.get("x-asya-dlq-reason"),
        error=summary["error"],
        message=summary["message"],
        type=summary["type"],
        at=float(at) if isinstance(at, int | float) else None,
    )


async def _read(store: storage.ObjectStore, key: str) -> dict[str, Any]:
    record = json.loads(await store.get(key))
    if not isinstance(record, dict):
        raise ValueError(f"{key} does not hold a dead-letter record")
    return record


async def list_dead_letters(
    store: storage.ObjectStore, *, actor: str | None = None, reason: str | None = None, limit: int | None = None
) -> list[DeadLetterInfo]:
    """Dead letters still waiting, oldest day first, optionally filtered by actor and reason."""
    keys = await store.list_keys(storage.ERRORS_PREFIX)
    if actor is not None:
        keys = [k for k in keys if k.split("/")[2:3] == [storage.safe_segment(actor)]]
    gate = asyncio.Semaphore(_READ_CONCURRENCY)

    async def read(key: str) -> DeadLetterInfo:
        async with gate:
            return _info(key, await _read(store, key))

    infos = await asyncio.gather(*(read(k) for k in keys))
    out = [i for i in infos if reason is None or i.reason == reason]
    return out[:limit] if limit is not None else out


async def find(store: storage.ObjectStore, ref: str) -> str:
    """Storage key of the dead letter named by ``ref`` (a key, or an envelope id; newest wins)."""
    if ref.startswith(storage.ERRORS_PREFIX):
        if await store.exists(ref):
            return ref
        raise DeadLetterNotFound(ref)
    name = storage.safe_segment(ref) + ".json"
    matches = [k for k in await store.list_keys(storage.ERRORS_PREFIX) if k.rsplit("/", 1)[-1] == name]
    if not matches:
        raise DeadLetterNotFound(ref)
    return matches[-1]


async def show(store: storage.ObjectStore, ref: str) -> dict[str, Any]:
    """The full dead-letter record (error details, original payload, headers, route)."""
    return await _read(store, await find(store, ref))


def rebuild(record: dict[str, Any]) -> Envelope:
    """The envelope to replay from a dead-letter record, budget reset; ``EnvelopeError`` if there is none."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        raise EnvelopeError("payload", "dead letter has no error payload")
    if "original_payload" in payload:
        env = retrying.original_envelope(record)
    elif isinstance(payload.get("original_body"), str) and payload.get("original_body_encoding", "utf-8") == "utf-8":
        # a message that once failed to parse: replayable only if it reads as an envelope now
        try:
            env = json.loads(payload["original_body"])
        except ValueError:
            raise EnvelopeError("payload.original_body", "is not JSON: fix and resend it by hand") from None
    else:
        raise EnvelopeError("payload", "neither original_payload nor a readable original_body to replay")
    env = {k: v for k, v in env.items() if k != "dlq"}
    return validate_envelope(retrying.reset_budget(env))


async def replay(store: storage.ObjectStore, transport: transports.Transport, refs: list[str]) -> list[ReplayOutcome]:
    """Send each dead letter named in ``refs`` back to its actor with a fresh budget; move its record."""
    outcomes = []
    for ref in refs:
        key = await find(store, ref)
        record = await _read(store, key)
        env_id = str(record.get("id", ""))
        try:
            env = rebuild(record)
        except EnvelopeError as exc:
            outcomes.append(ReplayOutcome(key, env_id, None, str(exc)))
            continue
        queue = queue_name(next_destination(env))
        await transport.ensure_queue(queue)
        await transport.publish(queue, encode_envelope(stamp_published(env)))
        # publish first: a crash before the move means a second replay could send it twice, never zero times
        await store.put(REPLAYED_PREFIX + key.removeprefix(storage.ERRORS_PREFIX), json.dumps(record).encode())
        await store.delete(key)
        outcomes.append(ReplayOutcome(key, env_id, queue))
    return outcomes
