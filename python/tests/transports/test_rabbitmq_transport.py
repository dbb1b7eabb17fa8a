"""The ``rabbitmq`` transport against a real broker: the shared contracts, plus restarts."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Any

import pytest
from transports.contract import (
    DEADLINE_S,
    AckNackContract,
    ConcurrencyContract,
    DelayContract,
    DurabilityContract,
    PublishConsumeContract,
    RedeliveryContract,
    TransportContract,
    eventually,
    next_delivery,
)

from asya import transports
from asya.contracts.errors import PermanentError, TransportError, TransportFeatureNotSupported
from asya.transports import Delivery, Transport, TransportSettings
from asya.transports.rabbitmq import PublishNotConfirmedError

pytestmark = pytest.mark.rabbitmq


class RabbitMQConfig:
    """Config mixin: the session broker; ``restart_broker`` makes DurabilityContract restart it."""

    queue_type = "classic"

    @pytest.fixture(autouse=True)
    def _rabbitmq(self, rabbitmq_server: Any) -> None:
        self.server = rabbitmq_server

    def settings(self) -> TransportSettings:
        options = {"queue_type": self.queue_type, "reconnect_interval_s": "0.2"}
        return TransportSettings(kind="rabbitmq", url=self.server.url, options=options)

    async def restart_broker(self) -> None:
        await asyncio.to_thread(self.server.restart)


class QuorumConfig(RabbitMQConfig):
    """Quorum queues count redeliveries themselves (``x-delivery-count``)."""

    queue_type = "quorum"


class TestRabbitMQPublishConsume(RabbitMQConfig, PublishConsumeContract): ...


class TestRabbitMQAckNack(RabbitMQConfig, AckNackContract): ...


class TestRabbitMQRedelivery(RabbitMQConfig, RedeliveryContract): ...


class TestRabbitMQQuorumAckNack(QuorumConfig, AckNackContract): ...


class TestRabbitMQQuorumRedelivery(QuorumConfig, RedeliveryContract): ...


class TestRabbitMQDelay(RabbitMQConfig, DelayContract): ...


class TestRabbitMQDurability(RabbitMQConfig, DurabilityContract): ...


class TestRabbitMQConcurrency(RabbitMQConfig, ConcurrencyContract): ...


class TestRabbitMQSpecifics(RabbitMQConfig, TransportContract):
    async def test_delayed_publish_is_refused_clearly(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        with pytest.raises(TransportFeatureNotSupported):
            await t.publish(q, b"x", delay_s=1.5)

    async def test_publish_to_missing_queue_fails_loudly(self) -> None:
        t = await self.make_transport()
        with pytest.raises(PublishNotConfirmedError, match="no such queue"):
            await t.publish("asya-test-does-not-exist", b"x")
        q = await self.new_queue(t)  # the shared confirm channel is still usable
        await t.publish(q, b"ok")

    async def test_oversized_body_is_permanent_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from asya.transports import rabbitmq

        monkeypatch.setattr(rabbitmq, "MAX_MESSAGE_BYTES", 10)
        t = await self.make_transport()
        q = await self.new_queue(t)
        with pytest.raises(PermanentError):
            await t.publish(q, b"x" * 11)

    async def test_queue_depth_of_missing_queue_is_zero(self) -> None:
        t = await self.make_transport()
        assert await t.queue_depth("asya-test-never-declared") == 0
        q = await self.new_queue(t)  # and the connection is fine afterwards
        assert await t.queue_depth(q) == 0

    async def test_asya_attempt_header_counts_deliberate_requeues(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"retry", headers={"x-asya-attempt": 3})
        it = self.consume(t, q)
        d = await next_delivery(it)
        assert d.attempt == 3
        await d.nack(requeue=True)
        again = await next_delivery(it)
        assert again.attempt == 4
        await again.ack()

    async def test_a_counted_requeue_that_cannot_republish_falls_back_and_says_so(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="asya.transports.rabbitmq")
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"job")
        d = await next_delivery(self.consume(t, q))
        await t.delete_queue(q)  # the copy has nowhere to go: the broker returns it
        await d.nack(requeue=True)  # must not raise: the plain requeue is the fallback
        ours = [r.getMessage() for r in caplog.records if r.name == "asya.transports.rabbitmq"]
        assert any(d.message_id in m and "counted requeue" in m for m in ours), ours
        await t.ensure_queue(q)  # and the transport carries on
        await t.publish(q, b"after")


class TestRabbitMQBrokerRestart(RabbitMQConfig, TransportContract):
    async def test_consumer_and_publisher_carry_on_across_restart(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.WARNING, logger="asya.transports.rabbitmq")
        t = await self.make_transport()
        q = await self.new_queue(t)
        expected = {f"m{i}".encode() for i in range(60)}
        before, after = sorted(expected)[:30], sorted(expected)[30:]
        for body in before:
            await t.publish(q, body)
        received: collections.Counter[bytes] = collections.Counter()
        held: list[Delivery] = []

        def all_in() -> bool:
            # every message seen, and the ones in flight at the restart seen again (redelivered)
            return set(received) >= expected and all(received[d.body] >= 2 for d in held)

        async def consume() -> None:
            async for d in self.consume(t, q, prefetch=5):
                received[d.body] += 1
                if len(held) < 3:
                    held.append(d)  # in flight when the broker goes away
                else:
                    await d.ack()
                if all_in():
                    return

        task = asyncio.create_task(consume())
        await eventually(lambda: len(held) == 3 and len(received) >= 10)
        await self.restart_broker()
        for d in held:
            await d.ack()  # its channel is gone: logged, not raised; the broker redelivers it
        for body in after:  # publishes wait for the connection to come back
            await t.publish(q, body)
        await asyncio.wait_for(task, DEADLINE_S * 2)
        await eventually(lambda: _depth_is(t, q, 0))
        ours = [r.getMessage() for r in caplog.records if r.name == "asya.transports.rabbitmq"]
        assert any("will be redelivered" in m for m in ours)


class TestRabbitMQFailures(RabbitMQConfig, TransportContract):
    async def test_a_publish_the_broker_does_not_confirm_in_time_is_a_transport_error(self) -> None:
        # A memory alarm makes RabbitMQ stop reading from publishing connections: no confirm comes.
        t = transports.create(dataclasses.replace(self.settings(), publish_timeout_s=1.0))
        await t.connect()
        self._opened.append(t)
        q = await self.new_queue(t)
        await asyncio.to_thread(self.server.ctl, "set_vm_memory_high_watermark", "0")
        try:
            start = asyncio.get_running_loop().time()
            with pytest.raises(TransportError, match="not confirmed within"):
                await t.publish(q, b"stuck")
            assert asyncio.get_running_loop().time() - start < DEADLINE_S
        finally:
            await asyncio.to_thread(self.server.ctl, "set_vm_memory_high_watermark", "0.4")

    async def test_every_operation_on_a_dead_broker_is_a_transport_error(self) -> None:
        settings = dataclasses.replace(self.settings(), publish_timeout_s=1.0)
        t = transports.create(settings)
        await t.connect()
        self._opened.append(t)
        q = await self.new_queue(t)
        await asyncio.to_thread(self.server.crash)
        try:
            ops = {
                "publish": lambda: t.publish(q, b"x"),
                "ensure_queue": lambda: t.ensure_queue(q),
                "delete_queue": lambda: t.delete_queue(q),
                "queue_depth": lambda: t.queue_depth(q),
                "consume": lambda: anext(t.consume(q, prefetch=1)),
                "connect": transports.create(settings).connect,
            }
            for name, op in ops.items():
                with pytest.raises(TransportError) as info:
                    await asyncio.wait_for(op(), DEADLINE_S)
                assert info.value.__cause__ is not None, name
        finally:
            await asyncio.to_thread(self.server.start)
        # The same transport carries on once the broker is back (declaring again: a SIGKILL
        # moments after a declare may cost the broker that queue).
        await t.ensure_queue(q)
        await t.publish(q, b"back")


async def _depth_is(t: Transport, q: str, n: int) -> bool:
    return await t.queue_depth(q) == n
