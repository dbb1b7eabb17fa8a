"""Envelopes across several hops: headers and unknown fields survive, fan-out, big payloads, null payloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from sidecar.conftest import Actors, Broker, Bus, envelope, on_every_broker
from support.envelopes import user_headers

from asya import storage
from asya.storage import claimcheck


@on_every_broker
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
    (done,) = await bus.collect(bus.happy_end, 1)
    assert user_headers(done) == headers
    assert done["tenant"] == "acme" and done["extra"] == {"a": [1]}
    assert done["route"] == {"actors": route, "current": 3}
    assert done["payload"]["n"] == 3 and done["payload"]["trail"] == route
    assert done["id"] == "h-1"


@pytest.mark.slow
@on_every_broker
async def test_generator_fan_out_of_1000_items(bus: Bus, actors: Actors) -> None:
    me, nxt = bus.actor("splitter"), bus.actor("next")
    actors.start(me, "fan_gen")
    await bus.publish(me, envelope("f-1", [me, nxt], {"n": 1000}, headers={"k": "v"}))
    outs = await bus.collect(nxt, 1000, timeout=120)
    assert sorted(o["payload"]["i"] for o in outs) == list(range(1000))
    assert {o["parent_id"] for o in outs} == {"f-1"}
    assert len({o["id"] for o in outs}) == 1000
    assert all(user_headers(o) == {"k": "v"} for o in outs)


@on_every_broker
async def test_ten_mib_envelope_passes_through(broker: Broker, bus: Bus, actors: Actors, tmp_path: Path) -> None:
    me, nxt = bus.actor("bigpass"), bus.actor("next")
    blob = "x" * (10 * 1024 * 1024)
    env = envelope("big-1", [me, nxt], {"blob": blob})
    renv = {"ASYA_ACTOR": me}
    if broker.kind == "sqs":
        # SQS takes 256 KiB: the payload travels by claim check, as a gateway and the sidecar do it
        url = (tmp_path / "store").as_uri()
        store = storage.create_store(url)
        actors.start(me, "add_one", runtime_env=renv, ASYA_STORAGE_URL=url)
        await bus.publish(me, await claimcheck.offload(env, store))
        (out,) = await bus.collect(nxt, 1, timeout=60)
        assert claimcheck.reference(out["payload"]) is not None, "a 10 MiB payload cannot be inline on SQS"
        out = await claimcheck.resolve(out, store)
        await store.close()
    else:
        actors.start(me, "add_one", runtime_env=renv)
        await bus.publish(me, env)
        (out,) = await bus.collect(nxt, 1, timeout=60)
    assert out["id"] == "big-1" and out["payload"]["blob"] == blob
    assert out["payload"]["n"] == 1 and out["payload"]["trail"] == [me], "the handler saw the whole payload"


async def test_envelope_mode_handler_extends_the_route(bus: Bus, actors: Actors) -> None:
    me = bus.actor("router")
    extra = bus.actor("added")
    actors.start(me, "add_step", mode="envelope")
    await bus.publish(me, envelope("r-1", [me], {"extra": extra}))
    (out,) = await bus.collect(extra, 1)
    assert out["route"] == {"actors": [me, extra], "current": 1}


@on_every_broker
async def test_null_payload_passes_through_a_handler_and_arrives_as_null(bus: Bus, actors: Actors) -> None:
    me, nxt = bus.actor("nullpass"), bus.actor("next")
    actors.start(me, "as_one_output")
    await bus.publish(me, envelope("null-1", [me, nxt], None, headers={"k": "v"}))
    (out,) = await bus.collect(nxt, 1)
    assert "payload" in out and out["payload"] is None
    assert out["route"] == {"actors": [me, nxt], "current": 1}
    assert out["id"] == "null-1" and user_headers(out) == {"k": "v"}
