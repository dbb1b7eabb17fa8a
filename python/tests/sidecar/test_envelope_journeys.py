"""Envelopes across several hops: headers and unknown fields survive, fan-out, big payloads."""

from __future__ import annotations

import pytest
from sidecar.conftest import Actors, Bus, envelope


async def test_headers_and_unknown_fields_intact_after_three_hops(bus: Bus, actors: Actors) -> None:
    route = [bus.actor("one"), bus.actor("two"), bus.actor("three")]
    for name in route:
        actors.start(name, "add_one", runtime_env={"ASYA_ACTOR": name})
    headers = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "x-deadline": "2030-01-01",
        "priority": 7,
        "user": {"nested": [1, 2]},
    }
    await bus.publish(route[0], envelope("h-1", route, {"n": 0}, headers=headers, tenant="acme", extra={"a": [1]}))
    (done,) = await bus.collect("happy-end", 1)
    assert done["headers"] == headers
    assert done["tenant"] == "acme" and done["extra"] == {"a": [1]}
    assert done["route"] == {"actors": route, "current": 3}
    assert done["payload"]["n"] == 3 and done["payload"]["trail"] == route
    assert done["id"] == "h-1"


@pytest.mark.slow
async def test_generator_fan_out_of_1000_items(bus: Bus, actors: Actors) -> None:
    me = bus.actor("splitter")
    actors.start(me, "fan_gen")
    await bus.publish(me, envelope("f-1", [me, "next"], {"n": 1000}, headers={"k": "v"}))
    outs = await bus.collect("next", 1000, timeout=90)
    assert sorted(o["payload"]["i"] for o in outs) == list(range(1000))
    assert {o["parent_id"] for o in outs} == {"f-1"}
    assert len({o["id"] for o in outs}) == 1000
    assert all(o["headers"] == {"k": "v"} for o in outs)


async def test_ten_mib_envelope_passes_through(bus: Bus, actors: Actors) -> None:
    me = bus.actor("bigpass")
    actors.start(me, "echo")
    blob = "x" * (10 * 1024 * 1024)
    await bus.publish(me, envelope("big-1", [me, "next"], {"blob": blob}))
    (out,) = await bus.collect("next", 1, timeout=60)
    assert out["id"] == "big-1" and len(out["payload"]["blob"]) == len(blob)


async def test_envelope_mode_handler_extends_the_route(bus: Bus, actors: Actors) -> None:
    me = bus.actor("router")
    extra = bus.actor("added")
    actors.start(me, "add_step", mode="envelope")
    await bus.publish(me, envelope("r-1", [me], {"extra": extra}))
    (out,) = await bus.collect(extra, 1)
    assert out["route"] == {"actors": [me, extra], "current": 1}
