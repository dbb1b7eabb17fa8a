"""An output the broker can never take goes to error-end with advice, instead of looping forever."""

from __future__ import annotations

import pytest
from sidecar.conftest import Actors, Bus, envelope


@pytest.mark.sqs
@pytest.mark.parametrize("broker", ["sqs"], indirect=True)
async def test_output_over_the_sqs_limit_without_claim_check_goes_to_error_end(
    broker, bus: Bus, actors: Actors
) -> None:
    me = bus.actor("inflater")
    actors.start(me, "big")
    await bus.publish(me, envelope("big-out-1", [me, bus.actor("next")], {"bytes": 300_000}))
    (dead,) = await bus.collect(bus.error_end, 1, timeout=60)
    assert dead["id"] == "big-out-1"
    assert "cannot be published" in dead["payload"]["details"]["message"]
    assert "ASYA_STORAGE_URL" in dead["payload"]["details"]["message"]
    assert await bus.depth(me) == 0
