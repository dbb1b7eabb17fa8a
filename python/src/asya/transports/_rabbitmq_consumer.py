"""Consumer side of the ``rabbitmq`` transport: one ``consume`` iterator's channel and settle hooks.

Imported only by ``asya.transports.rabbitmq`` (kept apart so each module stays
readable): the buffer between aio-pika's callback and the iterator, how a
delivery is settled, and how its attempt and id are read from the message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

import aio_pika.abc
import aiormq.exceptions

from asya.transports.base import ATTEMPT_HEADER, Delivery

log = logging.getLogger("asya.transports.rabbitmq")


class Consumer:
    """One ``consume`` iterator: its channel, its buffer, and the settle hooks of its deliveries."""

    def __init__(
        self,
        channel: aio_pika.abc.AbstractRobustChannel,
        forget: Callable[[Consumer], None],
        requeue_counted: Callable[[Delivery], Awaitable[None]] | None,
    ) -> None:
        self.channel = channel
        self._forget = forget
        self._requeue_counted = requeue_counted
        """Set for classic queues, which keep no delivery count of their own."""
        self.buffer: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage | None] = asyncio.Queue()
        self.tag: str | None = None
        self.outstanding = 0
        self.stopped = False
        self.transport_closed = False

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if self.stopped:
            # Arrived between our basic.cancel and its CancelOk: hand it straight back.
            await settle(message, "nack", requeue=True)
            return
        self.buffer.put_nowait(message)

    def stop(self) -> None:
        """Transport is closing: end the iterator (the connection close requeues the rest)."""
        self.stopped = self.transport_closed = True
        self.buffer.put_nowait(None)

    async def stop_consuming(self, amqp_queue: aio_pika.abc.AbstractQueue | None) -> None:
        self.stopped = True
        if self.transport_closed:
            return
        if amqp_queue is not None and self.tag is not None:
            try:
                await amqp_queue.cancel(self.tag)
            except Exception as exc:  # the channel is gone: nothing more comes on it, and the broker requeues
                log.warning("rabbitmq: could not cancel consumer %s (%r)", self.tag, exc)
        while not self.buffer.empty():
            message = self.buffer.get_nowait()
            if message is not None and not channel_dead(message):
                await settle(message, "nack", requeue=True)

    async def close_channel(self) -> None:
        self._forget(self)
        if self.transport_closed:
            return  # the connection is closing and takes its channels with it
        try:
            await self.channel.close()
        except Exception as exc:  # closing a channel the broker already closed: its deliveries went back
            log.warning("rabbitmq: could not close consumer channel (%r)", exc)

    async def _settled(self) -> None:
        self.outstanding -= 1
        if self.stopped and self.outstanding == 0:
            await self.close_channel()

    # _Settler protocol (called by Delivery)

    async def ack(self, delivery: Delivery) -> None:
        await settle(delivery.raw, "ack")
        await self._settled()

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        raw: aio_pika.abc.AbstractIncomingMessage = delivery.raw
        if requeue and self._requeue_counted is not None and not channel_dead(raw):
            try:
                await self._requeue_counted(delivery)
            except Exception as exc:
                # Better an uncounted requeue (counted as "redelivered" next time) than a lost message.
                log.warning(
                    "rabbitmq: counted requeue of message %s failed (%r); requeueing it as it is",
                    delivery.message_id,
                    exc,
                )
            else:
                await settle(raw, "ack")
                await self._settled()
                return
        await settle(raw, "nack", requeue=requeue)
        await self._settled()

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        """No leases in AMQP: a delivery stays ours until the channel closes."""


async def settle(message: aio_pika.abc.AbstractIncomingMessage, how: str, *, requeue: bool = False) -> None:
    try:
        if how == "ack":
            await message.ack()
        else:
            await message.nack(requeue=requeue)
    except Exception as exc:
        # The channel died (broker restart, connection loss): the broker requeues the
        # message itself, so this delivery will simply come again.
        log.warning("rabbitmq: could not %s message %s (%r); it will be redelivered", how, message_id(message), exc)


def channel_dead(message: aio_pika.abc.AbstractIncomingMessage) -> bool:
    try:
        return bool(message.channel.is_closed)
    except aiormq.exceptions.ChannelInvalidStateError:
        return True


def attempt(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    headers = message.headers or {}
    counts = []
    count = as_int(headers.get("x-delivery-count"))
    if count is not None:  # quorum queues: number of earlier deliveries
        counts.append(count + 1)
    asya = as_int(headers.get(ATTEMPT_HEADER))
    if asya is not None:
        counts.append(asya + (1 if message.redelivered else 0))
    if counts:
        # both on a quorum queue we adopted (requeues counted by us, crashes by the broker): the larger
        return max(counts)
    return 2 if message.redelivered else 1


def as_int(value: object) -> int | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, int | str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def message_id(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The AMQP ``message_id``, or a digest of the body (stable across requeues) when the publisher set none."""
    return message.message_id or hashlib.blake2b(message.body, digest_size=8).hexdigest()
