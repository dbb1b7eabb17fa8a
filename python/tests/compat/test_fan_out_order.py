"""Children of one envelope reach the next queue in the order the handler produced them."""

from __future__ import annotations

import asyncio
import json

import pytest
from compat.conftest import Procs
from sidecar.conftest import Bus, envelope

from asya.contracts import queue_name

pytestmark = [pytest.mark.rabbitmq]


async def _in_queue_order(bus: Bus, actor: str, count: int, timeout: float) -> list[str]:
    """Ids as one consumer with prefetch 1 takes them: the queue's order."""
    queue = queue_name(actor)
    await bus.transport.ensure_queue(queue)
    ids: list[str] = []

    async def take() -> None:
        async for delivery in bus.transport.consume(queue, prefetch=1):
            ids.append(json.loads(delivery.body)["id"])
            await delivery.ack()
            if len(ids) >= count:
                return

    try:
        await asyncio.wait_for(take(), timeout)
    except TimeoutError:
        raise AssertionError(f"only {len(ids)} of {count} children arrived on {queue}") from None
    return ids


@pytest.mark.parametrize("handler", ["numbered", "numbered_list"])
async def test_200_children_arrive_in_order(rabbit_bus: Bus, procs: Procs, handler: str) -> None:
    me, nxt = rabbit_bus.actor("splitter"), rabbit_bus.actor("next")
    sock = procs.socket_dir()
    procs.runtime(handler, sock)
    procs.sidecar(me, sock)
    await rabbit_bus.publish(me, envelope("fan", [me, nxt], {"n": 200}))
    ids = await _in_queue_order(rabbit_bus, nxt, 200, timeout=60)
    assert ids == [f"fan.{i}" for i in range(200)]
