"""A generator that raises after yielding: its items go on, and error-end learns how many did."""

from __future__ import annotations

import pytest
from sidecar.conftest import Actors, Bus, envelope
from support.envelopes import user_headers


@pytest.mark.parametrize(
    ("handler", "n"),
    [("fail_after_gen", 3), ("fail_after_async_gen", 3), ("fail_after_gen", 1)],
    ids=["sync-3", "async-3", "sync-1"],
)
async def test_partial_fan_out_reaches_next_and_error_end_counts_it(
    bus: Bus, actors: Actors, handler: str, n: int
) -> None:
    me, nxt = bus.actor("source"), bus.actor("next")
    actors.start(me, handler)
    env_id = f"gen-{bus.prefix}-{handler}-{n}"
    await bus.publish(me, envelope(env_id, [me, nxt], {"n": n}, headers={"k": "v"}))

    outs = await bus.collect(nxt, n)
    assert sorted(o["payload"]["i"] for o in outs) == list(range(n))
    assert all(user_headers(o) == {"k": "v"} for o in outs)

    dead = [d for d in await bus.collect_ids("error-end", {env_id}) if d["id"] == env_id]
    assert len(dead) == 1, dead
    failure = dead[0]["payload"]
    assert failure["error"] == "processing_error"
    assert failure["details"]["items_before_error"] == n
    assert failure["details"]["type"] == "RuntimeError"
    assert f"source ran dry after {n} items" in failure["details"]["message"]
    assert failure["original_payload"] == {"n": n}
    assert await bus.depth(nxt) == 0  # exactly the n items, nothing after the failure
    assert await bus.depth(me) == 0
