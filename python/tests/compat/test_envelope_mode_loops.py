"""Envelope mode with ``route.current`` unchanged: 0.1.x's deliberate loop works, a runaway one is stopped.

The sidecar counts the outputs of a looping envelope in ``x-asya-hops``; once ``ASYA_MAX_HOPS`` is spent
the envelope goes to error-end as ``hop_budget``, non-retryable, so error-end dead-letters it at once.
"""

from __future__ import annotations

import pytest
from compat.conftest import Procs
from sidecar.conftest import Bus, envelope
from support.envelopes import user_headers

from asya.contracts import DlqReason, headers
from asya.crew.retrying import DeadLetter, decide
from asya.crew.settings import RetrySettings

pytestmark = [pytest.mark.rabbitmq]


async def test_a_self_looping_handler_is_stopped_by_the_hop_budget(rabbit_bus: Bus, procs: Procs) -> None:
    me, nxt, err_end = rabbit_bus.actor("looper"), rabbit_bus.actor("next"), rabbit_bus.actor("errors")
    sock = procs.socket_dir()
    procs.runtime("self_loop", sock, mode="envelope")
    procs.sidecar(me, sock, ASYA_MAX_HOPS=20, ASYA_ERROR_END_ACTOR=err_end)
    await rabbit_bus.publish(me, envelope("loop-1", [me, nxt], {"visits": 0}, headers={"k": "v"}))

    (dead,) = await rabbit_bus.collect(err_end, 1, timeout=60)
    assert dead["id"] == "loop-1"
    assert dead["route"] == {"actors": [me, nxt], "current": 0}, "filed at the looping step"
    assert dead["headers"]["k"] == "v" and dead["headers"][headers.HOPS] == 20
    failure = dead["payload"]
    assert failure["original_payload"] == {"visits": 20}, "the handler ran once per hop, then no more"
    details = failure["details"]
    assert details["retryable"] is False and details["dlq_reason"] == DlqReason.HOP_BUDGET.value
    assert "ASYA_MAX_HOPS=20" in details["message"] and "loops at actor" in details["message"]
    decision = decide(dead, RetrySettings())
    assert isinstance(decision, DeadLetter) and decision.reason is DlqReason.HOP_BUDGET
    assert await rabbit_bus.depth(nxt) == 0 and await rabbit_bus.depth(me) == 0


async def test_a_handler_that_loops_on_purpose_then_advances_reaches_the_next_actor(
    rabbit_bus: Bus, procs: Procs
) -> None:
    me, nxt, err_end = rabbit_bus.actor("retrier"), rabbit_bus.actor("next"), rabbit_bus.actor("errors")
    sock = procs.socket_dir()
    procs.runtime("loop_then_advance", sock, mode="envelope")
    procs.sidecar(me, sock, ASYA_MAX_HOPS=5, ASYA_ERROR_END_ACTOR=err_end)
    await rabbit_bus.publish(me, envelope("again-1", [me, nxt], {"loops": 3}, headers={"k": "v"}))

    (out,) = await rabbit_bus.collect(nxt, 1, timeout=60)
    assert out["id"] == "again-1" and out["payload"] == {"loops": 3, "visits": 4}
    assert out["route"] == {"actors": [me, nxt], "current": 1}
    assert user_headers(out) == {"k": "v", headers.HOPS: 4}, "three loops and the hop onwards, within the budget of 5"
    assert await rabbit_bus.depth(err_end) == 0


async def test_a_plain_pipeline_carries_no_hop_counter(rabbit_bus: Bus, procs: Procs) -> None:
    # Only a looping envelope is counted: a fixed route walked forward ends by itself, headers untouched.
    me, nxt = rabbit_bus.actor("plain"), rabbit_bus.actor("next")
    sock = procs.socket_dir()
    procs.runtime("loop_then_advance", sock, mode="envelope")
    procs.sidecar(me, sock)
    await rabbit_bus.publish(me, envelope("plain-1", [me, nxt], {"loops": 0}, headers={"k": "v"}))
    (out,) = await rabbit_bus.collect(nxt, 1, timeout=60)
    assert user_headers(out) == {"k": "v"}
