"""Acks coalesced by the ``rabbitmq`` consumer (``_rabbitmq_consumer.AckWindow``), against a real broker.

Acks finished in the same loop tick go out together: the done head of the delivery order as one
``basic.ack(multiple=True)``, anything done behind a delivery still in work on its own. A multiple
ack must never cover that delivery: if it did, a crash would lose it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import pytest
from transports.contract import TransportContract, eventually, next_delivery
from transports.test_rabbitmq_transport import RabbitMQConfig

pytestmark = pytest.mark.rabbitmq


class TestAckWindow(RabbitMQConfig, TransportContract):
    async def _five(self) -> tuple[Any, str, list[Any]]:
        t = await self.make_transport()
        q = await self.new_queue(t)
        for i in range(5):
            await t.publish(q, f"m{i}".encode())
        it = self.consume(t, q, prefetch=5)
        return t, q, [await next_delivery(it) for _ in range(5)]

    async def test_acks_of_one_tick_never_cover_a_delivery_still_in_work(self) -> None:
        t, q, ds = await self._five()
        # 0, 1 done; 2 still in work; 3, 4 done: all four acks in the same tick
        await asyncio.gather(ds[0].ack(), ds[1].ack(), ds[3].ack(), ds[4].ack())
        await t.close()  # the consumer "crashes" holding delivery 2: the broker must have it back
        probe = await self.make_transport()
        await eventually(lambda: self._depth_is(probe, q, 1))
        again = await next_delivery(self.consume(probe, q))
        assert again.body == b"m2"
        await again.ack()
        await eventually(lambda: self._depth_is(probe, q, 0))

    async def test_the_done_head_goes_as_one_multiple_ack(self, monkeypatch: pytest.MonkeyPatch) -> None:
        sent: list[tuple[int, bool]] = []
        real = aiormq.Channel.basic_ack

        async def recording(self: aiormq.Channel, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
            sent.append((delivery_tag, multiple))
            await real(self, delivery_tag, multiple=multiple, wait=wait)

        monkeypatch.setattr(aiormq.Channel, "basic_ack", recording)
        t, q, ds = await self._five()
        await asyncio.gather(ds[0].ack(), ds[1].ack(), ds[2].ack(), ds[4].ack())
        tags = [d.raw.delivery_tag for d in ds]
        assert sorted(sent) == sorted([(tags[2], True), (tags[4], False)]), (sent, tags)
        await ds[3].ack()  # alone in its tick: a plain ack
        assert sent[-1] == (tags[3], False)
        await eventually(lambda: self._depth_is(t, q, 0))
        await t.close()
        probe = await self.make_transport()
        assert await probe.queue_depth(q) == 0  # nothing came back: every delivery was acked

    async def _depth_is(self, t: Any, q: str, n: int) -> bool:
        return bool(await t.queue_depth(q) == n)
