"""Delayed publish for the ``rabbitmq`` transport: per-delay TTL queues that dead-letter.

Part of the rabbitmq transport (the other module allowed to import aio-pika),
kept apart so that the delay machinery can be read and replaced on its own.
error-end calls ``publish_delayed`` for retries when the transport itself
reports ``supports_delay = False``; ``RabbitMQTransport.publish(delay_s=...)``
may delegate here too.

How: for a delay of ``ms`` milliseconds we keep a fanout exchange
``asya-delayed-<ms>`` bound to a durable queue ``asya-delayed-<ms>`` declared with
``x-message-ttl = ms`` and ``x-dead-letter-exchange = ""`` (both named
``<queue_prefix>delayed-<ms>`` on the broker, like every queue of ours). A
message is published to that exchange with the *target queue*'s broker name
as routing key; the fanout ignores the key and parks the message; when its TTL
runs out RabbitMQ dead-letters it to the default exchange with the original
routing key, i.e. into the target queue. One queue per delay value keeps expiry exact (every
message in a queue has the same TTL, so the head always expires first, which
per-message TTLs in one queue would not give). Nothing consumes these queues,
so nothing in our processes waits.

Crash safety: the delay queues are *quorum* queues with
``x-dead-letter-strategy = at-least-once`` (RabbitMQ >= 3.10). Classic queues
dead-letter at most once: a message that expires just before a ``kill -9``
can be gone from the delay queue and not yet in the target, so the retry is
lost. At-least-once keeps the expired message in the delay queue until the
target queue has confirmed its copy (after a crash it is dead-lettered again,
perhaps twice, which at-least-once allows). The strategy needs
``x-overflow = reject-publish``; without a length limit nothing is rejected.

No ``x-expires``: the delay queues stay. An expiring queue is deleted *with*
the messages parked in it, and on RabbitMQ 3.10 re-declaring a quorum queue
does not renew its expiry (measured: declared with 8 s, re-declared at 5 s,
gone at 10 s), so an error-end running longer than the expiry lost the
retries parked at that moment (found by the 10,000-envelope conservation run:
3 retries of 0.04 s gone). Retry delays are quantized (``crew.retrying.quantize``),
so the set of queues stays bounded (about 200 for the default policy), and an
empty quorum queue costs the broker little. The names changed twice with the
arguments (``asya-delay-<ms>`` were classic, ``asya-delayq-<ms>`` expired):
re-declaring an existing queue with other arguments fails, and the old ones
expire on their own.

Declares: each process declares a delay queue once, before its first use
(``declared``); a queue deleted by hand is declared again on the next publish.
error-end pre-declares the delays its policy will use (``predeclare``), so a
first retry does not pay for a declare.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq.exceptions

from asya.contracts.errors import PermanentError
from asya.transports import rabbitmq

if TYPE_CHECKING:
    from asya.transports.rabbitmq import RabbitMQTransport

DELAY_PREFIX = "asya-delayed-"
PREDECLARE_CHANNELS = 8
"""Channels ``predeclare`` declares on in parallel."""


class _State:
    """Per-transport bookkeeping: our channel, and the delay queues this process has declared."""

    def __init__(self) -> None:
        self.channel: Any = None
        self.declared: set[str] = set()
        self.locks: dict[str, asyncio.Lock] = {}


_states: weakref.WeakKeyDictionary[RabbitMQTransport, _State] = weakref.WeakKeyDictionary()


def delay_name(delay_ms: int) -> str:
    """Exchange and queue name for a delay of ``delay_ms`` milliseconds."""
    return f"{DELAY_PREFIX}{delay_ms}"


async def _channel(transport: RabbitMQTransport, state: _State) -> Any:
    # Our own long-lived confirm channel, for declares and delayed publishes: it saves an
    # open/close per new delay value, and a broker error on it (say, an exchange deleted by
    # hand) closes only this channel, never the transport's shared publisher.
    if state.channel is None or state.channel.is_closed:
        state.channel = await transport._conn().channel(publisher_confirms=True, on_return_raises=True)
    return state.channel


async def _declare(transport: RabbitMQTransport, delay_ms: int, own_channel: Any = None) -> str:
    name = transport.topology.broker(delay_name(delay_ms))  # under the queue prefix, like every queue of ours
    state = _states.setdefault(transport, _State())
    if name in state.declared:
        return name
    async with state.locks.setdefault(name, asyncio.Lock()):  # concurrent retries with one delay share a declare
        if name in state.declared:
            return name
        channel = own_channel or await _channel(transport, state)
        try:
            exchange = await channel.declare_exchange(
                name, aio_pika.ExchangeType.FANOUT, durable=True, auto_delete=True, robust=False
            )
            queue = await channel.declare_queue(
                name,
                durable=True,
                robust=False,
                arguments={
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-queue-type": "quorum",
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            await queue.bind(exchange, routing_key="", robust=False)
        except BaseException:
            if own_channel is None:
                state.channel = None  # a broker error closed it; the next call opens a fresh one
            raise
        state.declared.add(name)
    return name


async def predeclare(transport: RabbitMQTransport, delays_s: list[float]) -> None:
    """Declare the delay queues for ``delays_s`` ahead of use, so a first retry pays no declare."""
    todo = sorted({max(1, math.ceil(d * 1000)) for d in delays_s})

    async def worker(share: list[int]) -> None:
        # A quorum queue declare starts a Raft member (~70 ms here) and a channel runs one
        # method at a time: several channels in parallel keep a 200-delay warm-up short.
        channel = await transport._conn().channel(publisher_confirms=False)
        try:
            for delay_ms in share:
                await _declare(transport, delay_ms, channel)
        finally:
            if not channel.is_closed:
                await channel.close()

    with rabbitmq._broker_call("declare of delay queues"):
        await asyncio.gather(
            *(worker(todo[i::PREDECLARE_CHANNELS]) for i in range(min(PREDECLARE_CHANNELS, len(todo))))
        )


async def publish_delayed(
    transport: RabbitMQTransport,
    queue: str,
    body: bytes,
    *,
    headers: Mapping[str, Any] | None = None,
    delay_s: float,
) -> None:
    """Publish ``body`` so that it enters ``queue`` after ``delay_s`` seconds (confirmed when parked).

    Broker failures (and no confirm within the transport's ``publish_timeout_s``) raise ``TransportError``.
    """
    if len(body) > rabbitmq.MAX_MESSAGE_BYTES:
        raise PermanentError(f"message of {len(body)} bytes exceeds RabbitMQ's {rabbitmq.MAX_MESSAGE_BYTES}")
    with rabbitmq._broker_call(f"delayed publish to {queue!r}"):
        await _publish_delayed(transport, queue, body, headers, delay_s)


async def _publish_delayed(
    transport: RabbitMQTransport, queue: str, body: bytes, headers: Mapping[str, Any] | None, delay_s: float
) -> None:
    delay_ms = max(1, math.ceil(delay_s * 1000))
    target = transport.topology.broker(queue)  # the dead-letter hop goes through the default exchange
    message = aio_pika.Message(bytes(body), headers=dict(headers or {}), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    for attempt in (1, 2):
        name = await _declare(transport, delay_ms)
        state = _states.setdefault(transport, _State())
        try:
            channel = await _channel(transport, state)
            exchange = await channel.get_exchange(name, ensure=False)
            await exchange.publish(message, routing_key=target, mandatory=True, timeout=transport.publish_timeout_s)
            return
        except (aiormq.exceptions.PublishError, aiormq.exceptions.ChannelNotFoundEntity) as exc:
            # unroutable or no such exchange: the delay queue is gone (deleted by hand?); declare it again once
            state.declared.discard(name)
            if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
                state.channel = None  # the broker closed it
            if attempt == 2:
                raise
