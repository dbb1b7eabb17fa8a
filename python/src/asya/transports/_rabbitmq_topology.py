"""Names and topology of the ``rabbitmq`` transport: the queue prefix, the 0.1.x exchange, adopted queues.

Imported only by ``asya.transports.rabbitmq`` and its delay module (the
modules allowed to import aio-pika), kept apart so the rules below read in one place.

- Names: callers speak canonical names (``asya-<actor>``, ``asya-dlq``); the
  broker sees ``<queue_prefix><actor>`` (option ``queue_prefix``, default
  ``asya-``; ``""`` gives the onboarding guide's "the actor name is the queue
  name"). Names without the canonical prefix are kept as they are.
- Exchange: Asya 0.1.x publishes to a durable topic exchange (``asya`` by
  default) with the actor name as routing key. ``ensure`` declares that
  exchange (option ``exchange``; ``""`` turns the binding off) and binds the
  queue under ``<actor>`` (the canonical name without ``asya-``), so 0.1.x
  sidecars, gateways and scripts reach our queues. We publish to the default
  exchange (routing key = broker queue name), which reaches 0.1.x's queues too.
- Adoption: a queue (or the exchange) that already exists with other
  arguments (0.1.x's dead-letter arguments, a policy, another ``x-queue-type``)
  refuses a declare with PRECONDITION_FAILED, which closes the channel. We
  open another, declare passively, warn once naming the argument the broker
  reported, and use what is there. An adopted queue may be classic whatever we
  wanted, so requeues on it are counted by us (``x-asya-attempt``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions

from asya.contracts.envelope import QUEUE_PREFIX
from asya.transports.base import QUEUE_PREFIX_OPTION, broker_queue_name

log = logging.getLogger("asya.transports.rabbitmq")

DEFAULT_EXCHANGE = "asya"
"""Asya 0.1.x's default exchange name (``ASYA_RABBITMQ_EXCHANGE``)."""

_Channel = aio_pika.abc.AbstractRobustChannel


def refusal(exc: BaseException) -> str:
    """The broker's reason for a PRECONDITION_FAILED, without the code (it names the first differing argument)."""
    text = str(exc.args[0]) if exc.args else repr(exc)
    return text.removeprefix("PRECONDITION_FAILED - ")


class Topology:
    """One transport's naming and declaring rules (see the module docstring)."""

    def __init__(self, options: Mapping[str, str], queue_arguments: Mapping[str, Any]) -> None:
        self.prefix = options.get(QUEUE_PREFIX_OPTION, QUEUE_PREFIX)
        if self.prefix.startswith("amq."):
            raise ValueError(f"rabbitmq: queue_prefix {self.prefix!r} uses the broker's reserved 'amq.' prefix")
        self.exchange = options.get("exchange", DEFAULT_EXCHANGE)
        self.queue_arguments = dict(queue_arguments)
        self.adopted: set[str] = set()
        """Broker names of queues that exist with arguments other than ours."""
        self._warned: set[str] = set()

    def broker(self, queue: str) -> str:
        """The broker's name for canonical ``queue``."""
        return broker_queue_name(queue, self.prefix)

    def routing_key(self, queue: str) -> str:
        """The key ``queue`` is bound under on the exchange: the actor name, as 0.1.x publishes it."""
        return queue.removeprefix(QUEUE_PREFIX)

    async def ensure(self, open_channel: Callable[[], Awaitable[_Channel]], queue: str) -> None:
        """Declare (or adopt) ``queue`` and bind it to the exchange; broker failures propagate as the SDK's."""
        name = self.broker(queue)
        channel = await open_channel()
        try:
            if self.exchange:
                channel = await self._declare_exchange(channel, open_channel)
            try:
                amqp_queue = await channel.declare_queue(
                    name, durable=True, arguments=self.queue_arguments, robust=False
                )
                self.adopted.discard(name)  # declared as ours (perhaps re-created since it was adopted)
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                channel = await _reopen(channel, open_channel)
                amqp_queue = await channel.declare_queue(name, passive=True, robust=False)
                self.adopted.add(name)
                self._warn_once(
                    name,
                    "rabbitmq: queue %r already exists with other arguments (broker: %s); using it as it is, "
                    "where we would have declared %s; requeues on it are counted with x-asya-attempt",
                    name,
                    refusal(exc),
                    self.queue_arguments or "no arguments",
                )
            if self.exchange:
                await amqp_queue.bind(self.exchange, routing_key=self.routing_key(queue), robust=False)
        finally:
            await _close(channel)

    async def _declare_exchange(self, channel: _Channel, open_channel: Callable[[], Awaitable[_Channel]]) -> _Channel:
        if self.exchange.startswith("amq."):  # the broker's own exchanges exist and refuse a declare
            await channel.declare_exchange(self.exchange, passive=True, robust=False)
            return channel
        try:
            await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True, robust=False)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            channel = await _reopen(channel, open_channel)
            await channel.declare_exchange(self.exchange, passive=True, robust=False)
            self._warn_once(
                "exchange " + self.exchange,
                "rabbitmq: exchange %r already exists with other properties (broker: %s); binding to it as it "
                "is (0.1.x publishers route by the actor name, which a topic or direct exchange honours)",
                self.exchange,
                refusal(exc),
            )
        return channel

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)


async def _reopen(channel: _Channel, open_channel: Callable[[], Awaitable[_Channel]]) -> _Channel:
    # a refused declare closed the channel: carry on on a fresh one
    await _close(channel)
    return await open_channel()


async def _close(channel: _Channel) -> None:
    try:
        await channel.close()
    except Exception as exc:  # the broker closed it already (404/406 or a lost connection)
        log.debug("rabbitmq: admin channel close failed: %r", exc)
