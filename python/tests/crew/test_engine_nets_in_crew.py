"""The engine's safety nets as the crew sees them: what they dead-letter, with which reason, filed where.

- a happy-end message delivered more than ``max_deliveries`` times (e.g. happy-end killed on it again and
  again) is stored as a dead letter with reason ``delivery_limit`` instead of looping;
- the record a sidecar sends to error-end when its engine gives up keeps the engine's reason;
- a route mismatch is filed under the actor where it arrived, not the one its route names.
"""

from __future__ import annotations

import json
from pathlib import Path

from crew_helpers import eventually, open_transport, running, settings_for, stored

from asya.contracts import DlqReason, ErrorCode, encode_envelope
from asya.crew import retrying
from asya.engine import Failure, failures


async def test_happy_end_dead_letters_a_message_delivered_past_the_limit(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_deliveries=2)
    t = await open_transport(settings)
    try:
        await t.ensure_queue("asya-happy-end")
        env = {"id": "looper", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": {"x": 1}}
        await t.publish("asya-happy-end", encode_envelope(env))
        # two deliveries that never finish (a consumer dying on them): the broker counts them
        for _ in range(2):
            async for d in t.consume("asya-happy-end", prefetch=1):
                await d.nack(requeue=True)
                break
        async with running("happy-end", settings):
            dead = await eventually(lambda: stored(tmp_path / "store", "errors"), what="a dead letter")
        assert stored(tmp_path / "store") == [], "stored as a result although it was delivered past the limit"
        [path] = dead
        record = json.loads(path.read_text())
        assert record["id"] == "looper" and record["dlq"]["reason"] == DlqReason.DELIVERY_LIMIT.value
        assert record["payload"]["original_payload"] == {"x": 1}
        assert await t.queue_depth("asya-happy-end") == 0
    finally:
        await t.close()


def test_error_end_keeps_the_reason_the_engine_gave_up_with() -> None:
    failure = Failure(DlqReason.DELIVERY_LIMIT, ErrorCode.PROCESSING_ERROR.value, "delivered 6 times", "X")
    body = encode_envelope({"id": "e", "route": {"actors": ["a", "b"], "current": 1}, "headers": {}, "payload": 3})
    decision = retrying.decide(failures.record_for(body, "b", failure), settings_for(Path("/unused")).retry)
    assert isinstance(decision, retrying.DeadLetter)
    assert decision.reason is DlqReason.DELIVERY_LIMIT and decision.actor == "b"


async def test_route_mismatch_is_filed_under_the_actor_where_it_arrived(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    t = await open_transport(settings)
    try:
        # what the sidecar of actor "b" sends when an envelope for "a" reached its queue
        msg = {
            "id": "lost",
            "route": {"actors": ["a", "b"], "current": 0},
            "headers": {},
            "payload": {
                "error": ErrorCode.MSG_PARSING_ERROR.value,
                "details": {
                    "message": "reached actor 'b' but its route points at 'a'",
                    "type": "RouteMismatch",
                    "actor": "b",
                },
                "original_payload": 1,
            },
        }
        await t.ensure_queue("asya-error-end")
        await t.publish("asya-error-end", json.dumps(msg).encode())
        async with running("error-end", settings):
            [path] = await eventually(lambda: stored(tmp_path / "store", "errors"), what="a dead letter")
        assert path.parent.name == "b", f"filed under {path.parent.name!r}"
    finally:
        await t.close()
