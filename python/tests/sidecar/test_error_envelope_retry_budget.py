"""The sidecar stamps its actor's retry budget into error-end messages (error-end enforces it)."""

from __future__ import annotations

from sidecar.conftest import Actors, Bus, envelope

from asya.contracts import headers
from asya.sidecar import routing


def test_budget_is_filled_in_when_absent() -> None:
    env = envelope("e", ["a", "b"], {"x": 1}, headers={"user": "k"})
    out = routing.error_envelope(env, "processing_error", {"message": "m"}, {headers.RETRY_MAX: 5.0})
    assert out["headers"] == {"user": "k", headers.RETRY_MAX: 5}
    assert env["headers"] == {"user": "k"}, "the input envelope is not modified"


def test_budget_set_by_the_sender_for_this_step_is_kept() -> None:
    env = envelope("e", ["a", "b"], {}, headers={headers.RETRY_MAX: 9, headers.RETRY_STEP: 0})
    out = routing.error_envelope(env, "processing_error", {}, {headers.RETRY_MAX: 2.0})
    assert out["headers"][headers.RETRY_MAX] == 9


def test_budget_left_by_an_earlier_step_is_replaced() -> None:
    env = envelope("e", ["a", "b"], {}, current=1, headers={headers.RETRY_MAX: 9, headers.RETRY_STEP: 0})
    out = routing.error_envelope(
        env, "processing_error", {}, {headers.RETRY_MAX: 2.0, headers.RETRY_BACKOFF_BASE_S: 0.5}
    )
    assert out["headers"][headers.RETRY_MAX] == 2
    assert out["headers"][headers.RETRY_BACKOFF_BASE_S] == 0.5


async def test_sidecar_stamps_the_actor_budget_from_its_environment(bus: Bus, actors: Actors) -> None:
    me = bus.actor("budgeted")
    actors.start(me, "boom", ASYA_RETRY_MAX_ATTEMPTS="4", ASYA_RETRY_BACKOFF_BASE_S="0.25")
    await bus.publish(me, envelope("rb-1", [me, bus.actor("next")], {"t": 1}))
    (dead,) = await bus.collect(bus.error_end, 1)
    assert dead["headers"][headers.RETRY_MAX] == 4
    assert dead["headers"][headers.RETRY_BACKOFF_BASE_S] == 0.25
