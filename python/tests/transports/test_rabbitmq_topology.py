"""RabbitMQ topology against a real broker: 0.1.x's exchange, queues made by others, the queue prefix.

The "others" are raw aio-pika clients written here the way Asya 0.1.x (and the
onboarding guide's scripts) talk to the broker: a durable topic exchange
``asya``, routing key = actor name, no ``mandatory`` flag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq.exceptions
import pytest
from transports.contract import AckNackContract, PublishConsumeContract, TransportContract, next_delivery
from transports.test_rabbitmq_transport import QuorumConfig, RabbitMQConfig

from asya import transports
from asya.transports import Transport, TransportSettings, _rabbitmq_delays

pytestmark = pytest.mark.rabbitmq

LOGGER = "asya.transports.rabbitmq"
DLX_ARGUMENTS = {"x-dead-letter-exchange": "asya-dlx", "x-dead-letter-routing-key": "dlq"}
"""Dead-letter arguments like those 0.1.x's operator declares on an actor queue."""


@contextlib.asynccontextmanager
async def raw_channel(url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain client of our own, not the transport: confirms on, like a careful 0.1.x sidecar."""
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


async def publish_the_01x_way(url: str, actor: str, body: bytes, exchange: str = "asya") -> None:
    """What a 0.1.x sidecar or gateway does: declare the topic exchange, publish with key = actor, not mandatory."""
    async with raw_channel(url) as channel:
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        await ex.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=actor)


async def queue_exists(url: str, name: str) -> bool:
    async with raw_channel(url) as channel:
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True


class Topology(TransportContract):
    def new_actor(self) -> str:
        actor = f"topo-{uuid.uuid4().hex[:10]}"
        self._queues.append(f"asya-{actor}")  # deleted after the test
        return actor

    def warnings(self, caplog: pytest.LogCaptureFixture) -> list[str]:
        """The transport's warnings about things that already exist (adoptions)."""
        ours = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
        return [m for m in ours if "already exists" in m]


class TestExchange(RabbitMQConfig, Topology):
    extra: dict[str, str] = {}  # replaced per test, never mutated

    def settings(self) -> TransportSettings:
        base = super().settings()  # also used by the cleanup, so queues are deleted under the same options
        return dataclasses.replace(base, options={**base.options, **self.extra})

    async def _transport(self, **options: str) -> Transport:
        self.extra = options
        return await self.make_transport()

    async def test_a_01x_publisher_reaches_a_queue_we_ensured(self) -> None:
        t = await self.make_transport()
        actor = self.new_actor()
        await t.ensure_queue(f"asya-{actor}")
        await publish_the_01x_way(self.server.url, actor, b"from 0.1.x")
        await t.publish(f"asya-{actor}", b"from us")  # and our way (default exchange) still works
        it = self.consume(t, f"asya-{actor}")
        got = {(await next_delivery(it)).body for _ in range(2)}
        assert got == {b"from 0.1.x", b"from us"}

    async def test_the_exchange_name_is_an_option(self) -> None:
        exchange = f"asya-x-{uuid.uuid4().hex[:8]}"
        t = await self._transport(exchange=exchange)
        actor = self.new_actor()
        await t.ensure_queue(f"asya-{actor}")
        await publish_the_01x_way(self.server.url, actor, b"routed", exchange=exchange)
        assert (await next_delivery(self.consume(t, f"asya-{actor}"))).body == b"routed"
        async with raw_channel(self.server.url) as channel:
            await channel.exchange_delete(exchange)

    async def test_an_exchange_of_another_type_is_used_as_it_is(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.WARNING, logger=LOGGER)
        exchange = f"asya-direct-{uuid.uuid4().hex[:8]}"
        async with raw_channel(self.server.url) as channel:
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        t = await self._transport(exchange=exchange)
        actor = self.new_actor()
        await t.ensure_queue(f"asya-{actor}")
        await t.ensure_queue(f"asya-{actor}")
        async with raw_channel(self.server.url) as channel:
            ex = await channel.get_exchange(exchange)
            await ex.publish(aio_pika.Message(b"direct"), routing_key=actor)
            await channel.exchange_delete(exchange)
        assert (await next_delivery(self.consume(t, f"asya-{actor}"))).body == b"direct"
        [warning] = self.warnings(caplog)
        assert exchange in warning and "type" in warning

    async def test_exchange_option_empty_means_no_binding(self) -> None:
        t = await self._transport(exchange="")
        actor = self.new_actor()
        await t.ensure_queue(f"asya-{actor}")
        await publish_the_01x_way(self.server.url, actor, b"dropped by the broker")
        await t.publish(f"asya-{actor}", b"ours")
        assert (await next_delivery(self.consume(t, f"asya-{actor}"))).body == b"ours"
        assert await t.queue_depth(f"asya-{actor}") == 0


class AdoptionChecks(Topology):
    async def predeclare(self, actor: str, arguments: dict[str, Any]) -> None:
        async with raw_channel(self.server.url) as channel:
            await channel.declare_queue(f"asya-{actor}", durable=True, arguments=arguments)

    async def check_adopted(self, caplog: pytest.LogCaptureFixture, arguments: dict[str, Any], named: str) -> None:
        caplog.set_level(logging.WARNING, logger=LOGGER)
        actor = self.new_actor()
        await self.predeclare(actor, arguments)
        t = await self.make_transport()
        q = f"asya-{actor}"
        for _ in range(3):  # the operator, the sidecar's publisher and its consumer each ensure it
            await t.ensure_queue(q)
        await t.publish(q, b"job")
        await publish_the_01x_way(self.server.url, actor, b"job from 0.1.x")  # bound although adopted
        it = self.consume(t, q)
        d = await next_delivery(it)
        assert (d.body, d.attempt) == (b"job", 1)
        await d.nack(requeue=True)
        d2 = await next_delivery(it)
        assert d2.body == b"job from 0.1.x"
        await d2.ack()
        again = await next_delivery(it)
        assert (again.body, again.attempt) == (b"job", 2)
        await again.nack(requeue=True)
        third = await next_delivery(it)
        assert (third.body, third.attempt) == (b"job", 3)  # counted, whatever type the queue really has
        await third.ack()
        [warning] = self.warnings(caplog)
        assert q in warning and named in warning, warning


class TestAdoptClassic(RabbitMQConfig, AdoptionChecks):
    async def test_a_queue_with_01x_dead_letter_arguments_is_adopted(self, caplog: pytest.LogCaptureFixture) -> None:
        await self.check_adopted(caplog, DLX_ARGUMENTS, "x-dead-letter-exchange")

    async def test_an_adopted_quorum_queue_counts_our_requeues_and_its_redeliveries(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        await self.check_adopted(caplog, {"x-queue-type": "quorum"}, "x-queue-type")
        actor = self.new_actor()
        await self.predeclare(actor, {"x-queue-type": "quorum"})
        q = f"asya-{actor}"
        t = await self.make_transport()
        await t.ensure_queue(q)
        await t.publish(q, b"job")
        it = self.consume(t, q)
        d = await next_delivery(it)
        await d.nack(requeue=True)  # a copy with x-asya-attempt 2
        held = await next_delivery(it)
        assert held.attempt == 2
        await t.close()  # dies holding it: the broker redelivers and counts (x-delivery-count 1)
        t2 = await self.make_transport()
        again = await next_delivery(self.consume(t2, q))
        assert (again.body, again.attempt) == (b"job", 3)  # neither count alone says 3
        await again.ack()


class TestAdoptQuorum(QuorumConfig, AdoptionChecks):
    async def test_a_classic_queue_is_adopted_when_we_want_quorum(self, caplog: pytest.LogCaptureFixture) -> None:
        await self.check_adopted(caplog, {}, "x-queue-type")


class PrefixConfig(RabbitMQConfig):
    """The onboarding guide's naming: the actor name is the queue name."""

    def settings(self) -> TransportSettings:
        base = super().settings()
        return dataclasses.replace(base, options={**base.options, "queue_prefix": ""})


class TestPrefixPublishConsume(PrefixConfig, PublishConsumeContract): ...


class TestPrefixAckNack(PrefixConfig, AckNackContract): ...


class TestPrefix(PrefixConfig, Topology):
    async def test_the_guides_publish_reaches_our_canonical_queue(self) -> None:
        t = await self.make_transport()
        actor = self.new_actor()
        await t.ensure_queue(f"asya-{actor}")
        assert await queue_exists(self.server.url, actor)
        assert not await queue_exists(self.server.url, f"asya-{actor}")
        async with raw_channel(self.server.url) as channel:  # basic_publish(exchange='', routing_key=actor)
            await channel.default_exchange.publish(aio_pika.Message(b"default exchange"), routing_key=actor)
        await publish_the_01x_way(self.server.url, actor, b"asya exchange")
        assert await t.queue_depth(f"asya-{actor}") == 2
        it = self.consume(t, f"asya-{actor}")
        got = [await next_delivery(it) for _ in range(2)]
        assert {d.body for d in got} == {b"default exchange", b"asya exchange"}
        assert {d.queue for d in got} == {f"asya-{actor}"}  # callers keep speaking canonical names
        for d in got:
            await d.ack()
        await it.aclose()  # type: ignore[attr-defined]  # a live robust consumer could declare it again
        await t.delete_queue(f"asya-{actor}")
        assert not await queue_exists(self.server.url, actor)

    async def test_delayed_publish_lands_in_the_prefixed_queue(self) -> None:
        t = await self.make_transport()
        actor = self.new_actor()
        await t.ensure_queue(f"asya-{actor}")
        from asya.transports.rabbitmq import RabbitMQTransport

        assert isinstance(t, RabbitMQTransport)
        await _rabbitmq_delays.publish_delayed(t, f"asya-{actor}", b"later", delay_s=0.3)
        assert await queue_exists(self.server.url, "delayed-300")  # the delay queues follow the prefix
        assert (await next_delivery(self.consume(t, f"asya-{actor}"))).body == b"later"

    async def test_reserved_prefix_is_refused(self) -> None:
        with pytest.raises(ValueError, match="reserved"):
            transports.create(TransportSettings(kind="rabbitmq", options={"queue_prefix": "amq.x-"}))
