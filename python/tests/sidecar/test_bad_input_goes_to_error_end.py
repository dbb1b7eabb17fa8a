"""Every malformed input ends on error-end with a reason a person can act on; none is dropped."""

from __future__ import annotations

import json

import pytest
from sidecar.conftest import Actors, Bus, envelope
from support.envelopes import user_headers


def _cases(me: str, nxt: str) -> dict[str, tuple[bytes, str]]:
    ok_route = {"actors": [me, nxt], "current": 0}
    return {
        "non-json body": (b"\x00this is not json{", "body"),
        "json without id": (json.dumps({"route": ok_route, "payload": 1}).encode(), "id"),
        "no payload": (json.dumps({"id": "np", "route": ok_route}).encode(), "payload"),
        "current out of range": (
            json.dumps({"id": "oor", "route": {"actors": [me], "current": 5}, "payload": 1}).encode(),
            "route.current",
        ),
    }


@pytest.mark.parametrize("case", ["non-json body", "json without id", "no payload", "current out of range"])
async def test_invalid_envelope_reaches_error_end_with_the_field_named(bus: Bus, actors: Actors, case: str) -> None:
    me = bus.actor("checker")
    actors.start(me, "echo")
    body, field = _cases(me, bus.actor("next"))[case]
    await bus.publish(me, raw=body)
    (dead,) = await bus.collect(bus.error_end, 1)
    assert dead["payload"]["error"] == "msg_parsing_error"
    assert field in dead["payload"]["details"]["message"]
    assert dead["route"] == {"actors": [me], "current": 0}
    kept = dead["payload"].get("original_body") or dead["payload"].get("original_body_base64")
    assert kept, "the original message must be kept as evidence"
    assert await bus.depth(me) == 0


async def test_route_pointing_at_another_actor_goes_to_error_end(bus: Bus, actors: Actors) -> None:
    me = bus.actor("checker")
    actors.start(me, "echo")
    env = envelope("wrong-1", ["someone-else", me], {"x": 1}, headers={"h": "v"})
    await bus.publish(me, env)
    (dead,) = await bus.collect(bus.error_end, 1)
    assert dead["id"] == "wrong-1"
    assert "route points at 'someone-else'" in dead["payload"]["details"]["message"]
    assert dead["payload"]["original_payload"] == {"x": 1}
    assert user_headers(dead) == {"h": "v"}


async def test_handler_exception_goes_to_error_end_with_type_message_traceback(bus: Bus, actors: Actors) -> None:
    me = bus.actor("scorer")
    actors.start(me, "boom")
    await bus.publish(me, envelope("b-1", [me, bus.actor("next")], {"text": "hello"}, parent_id="p-0", custom={"k": 1}))
    (dead,) = await bus.collect(bus.error_end, 1)
    details = dead["payload"]["details"]
    assert dead["payload"]["error"] == "processing_error"
    assert details["type"] == "ValueError" and "boom" in details["message"]
    assert "Traceback (most recent call last)" in details["traceback"]
    assert dead["payload"]["original_payload"] == {"text": "hello"}
    assert dead["route"]["current"] == 0, "error-end sees the failing step"
    assert dead["parent_id"] == "p-0" and dead["custom"] == {"k": 1}


async def test_unserializable_result_goes_to_error_end(bus: Bus, actors: Actors) -> None:
    me = bus.actor("maker")
    actors.start(me, "not_json")
    await bus.publish(me, envelope("nj-1", [me, bus.actor("next")], {"a": 1}))
    (dead,) = await bus.collect(bus.error_end, 1)
    assert dead["payload"]["error"] == "processing_error"
    assert "not JSON-serializable" in dead["payload"]["details"]["message"]


async def test_none_result_ends_the_pipeline_at_happy_end(bus: Bus, actors: Actors) -> None:
    me = bus.actor("filter")
    actors.start(me, "nothing")
    await bus.publish(me, envelope("n-1", [me, bus.actor("next")], {"drop": True}))
    (done,) = await bus.collect(bus.happy_end, 1)
    assert done["id"] == "n-1" and done["payload"] == {"drop": True}
