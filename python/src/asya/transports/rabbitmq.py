"""The ``rabbitmq`` transport, on aio-pika (the only module that imports it).

Built by ``transports.create`` for the sidecar, crew actors and CLI when
``kind=rabbitmq``. One robust connection per transport; queues are durable
and bound to the default exchange (routing key = queue name); messages are
persistent; every publish waits for its publisher confirm.

Why shaped so:
- ``connect_robust`` reconnects after a broker restart and re-declares the
  consumers' queues and consumers; our own consume loop sits on top of that
  and drops deliveries buffered from a channel that died (the broker
  redelivers them), so the iterator keeps yielding across a restart.
- One confirm channel is shared by all publishes: aio-pika matches confirms
  to concurrent publishes, so throughput grows with the caller's concurrency.
  ``mandatory=True`` makes a publish to a missing queue fail loudly instead of
  vanishing. A publish that hits a dropped connection waits for recovery and
  retries until ``publish_timeout_s`` (this can duplicate, which
  at-least-once allows).
- Each ``consume`` gets its own channel, so ``basic_qos(prefetch)`` bounds
  exactly that iterator. The channel outlives the iterator until every
  delivery it yielded is settled: the sidecar stops iterating first and acks
  its in-flight work afterwards.
- ``attempt``: quorum queues count redeliveries in ``x-delivery-count``;
  otherwise the sidecar's ``x-asya-attempt`` header, plus one when the broker
  says ``redelivered``.

Options (``TransportSettings.options``): ``queue_type`` (``classic`` |
``quorum``), ``reconnect_interval_s`` (default 2), ``publish_timeout_s``
(default 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import aio_pika
import aio_pika.abc
import aiormq.exceptions

from asya.contracts.errors import PermanentError, RetryableError, TransportFeatureNotSupported
from asya.transports.base import ATTEMPT_HEADER, Delivery, Transport, TransportSettings

if TYPE_CHECKING:
    from typing_extensions import override
else:  # typing.override is 3.12+; at run time the decorator only documents intent

    def override(fn):
        return fn


log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
QUEUE_TYPES = ("classic", "quorum")
MAX_MESSAGE_BYTES = 128 * 1024 * 1024  # RabbitMQ's default max_message_size

# Failures that mean "the connection or channel went away", worth waiting for recovery.
# CancelledError: aiormq cancels pending confirms when the channel closes under them.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.AMQPConnectionError,
    asyncio.CancelledError,
)


class PublishNotConfirmedError(RetryableError):
    """The broker returned (no such queue) or nacked a publish: it was not stored."""


class RabbitMQTransport(Transport):
    """AMQP 0-9-1 queues on a RabbitMQ broker."""

    name: ClassVar[str] = "rabbitmq"
    supports_delay: ClassVar[bool] = False  # TTL + dead-letter delayed retries come with the crew issue
    max_message_bytes: ClassVar[int | None] = MAX_MESSAGE_BYTES

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self.url = settings.url or DEFAULT_URL
        opts = settings.options
        queue_type = opts.get("queue_type", "classic")
        if queue_type not in QUEUE_TYPES:
            raise ValueError(f"rabbitmq: queue_type must be one of {QUEUE_TYPES}, not {queue_type!r}")
        # Classic queues are declared without arguments so we agree with queues other tools made.
        self.queue_arguments: dict[str, Any] = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
        self.reconnect_interval_s = float(opts.get("reconnect_interval_s", "2"))
        self.publish_timeout_s = float(opts.get("publish_timeout_s", "30"))
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._publisher: aio_pika.abc.AbstractRobustChannel | None = None
        self._consumers: set[_Consumer] = set()

    # --- lifecycle ---

    @override
    async def connect(self) -> None:
        if self._connection is not None:
            return
        connection = await aio_pika.connect_robust(
            self.url,
            reconnect_interval=self.reconnect_interval_s,
            client_properties={"connection_name": "asya"},
        )
        try:
            self._publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection

    @override
    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._publisher = None
        for consumer in list(self._consumers):
            consumer.stop()
        if connection is not None:
            # Closing the connection hands every unacknowledged delivery back to the broker.
            await connection.close()

    def _conn(self) -> aio_pika.abc.AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("rabbitmq transport is not connected")
        return self._connection

    @contextlib.asynccontextmanager
    async def _admin_channel(self) -> AsyncIterator[aio_pika.abc.AbstractRobustChannel]:
        # A short-lived channel: a 404/406 from the broker closes only this one.
        conn = self._conn()
        if not conn.connected.is_set():  # reconnecting after a broker restart: wait rather than fail
            await asyncio.wait_for(conn.connected.wait(), self.publish_timeout_s)
        channel = await conn.channel(publisher_confirms=False)
        try:
            yield channel
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    # --- queues ---

    @override
    async def ensure_queue(self, queue: str) -> None:
        async with self._admin_channel() as channel:
            await channel.declare_queue(queue, durable=True, arguments=self.queue_arguments, robust=False)

    @override
    async def delete_queue(self, queue: str) -> None:
        async with self._admin_channel() as channel:
            await channel.queue_delete(queue)

    @override
    async def queue_depth(self, queue: str) -> int:
        try:
            async with self._admin_channel() as channel:
                declared = await channel.declare_queue(queue, passive=True, robust=False)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return 0
        result = declared.declaration_result
        return int(result.message_count or 0)

    # --- publish ---

    @override
    async def publish(
        self, queue: str, body: bytes, *, headers: Mapping[str, Any] | None = None, delay_s: float = 0.0
    ) -> None:
        if delay_s > 0:
            raise TransportFeatureNotSupported(
                f"rabbitmq transport cannot delay a publish yet (delay_s={delay_s}); retry without delay"
            )
        if len(body) > MAX_MESSAGE_BYTES:
            raise PermanentError(f"message of {len(body)} bytes exceeds RabbitMQ's {MAX_MESSAGE_BYTES}")
        message = aio_pika.Message(
            bytes(body), headers=dict(headers or {}), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout_s
        while True:
            channel = self._publisher
            if channel is None:
                raise RuntimeError("rabbitmq transport is not connected")
            try:
                await channel.default_exchange.publish(
                    message, routing_key=queue, mandatory=True, timeout=max(deadline - loop.time(), 0.001)
                )
                return
            except aiormq.exceptions.PublishError as exc:
                raise PublishNotConfirmedError(f"rabbitmq: publish to {queue!r} returned: no such queue") from exc
            except aiormq.exceptions.DeliveryError as exc:
                raise PublishNotConfirmedError(f"rabbitmq: broker nacked a publish to {queue!r}") from exc
            except _CONNECTION_ERRORS as exc:
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                    raise  # our caller cancelled us, not the connection
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ConnectionError(f"rabbitmq: publish to {queue!r} failed: {exc!r}") from exc
                log.info("rabbitmq: publish to %r interrupted (%r); waiting for the connection", queue, exc)
                await asyncio.wait_for(channel.ready(), remaining)

    # --- consume ---

    @override
    async def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[Delivery]:
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        channel = await self._conn().channel(publisher_confirms=False)
        consumer = _Consumer(channel, self._consumers.discard)
        self._consumers.add(consumer)
        amqp_queue: aio_pika.abc.AbstractRobustQueue | None = None
        try:
            await channel.set_qos(prefetch_count=prefetch)
            # Robust declare: after a reconnect aio-pika re-declares the queue and re-attaches the consumer.
            amqp_queue = await channel.declare_queue(queue, durable=True, arguments=self.queue_arguments)
            consumer.tag = await amqp_queue.consume(consumer.on_message)
            while True:
                message = await consumer.buffer.get()
                if message is None:
                    return  # transport closed
                if _channel_dead(message):
                    # Buffered before the channel died; the broker already requeued it.
                    continue
                consumer.outstanding += 1
                yield Delivery(
                    body=message.body,
                    queue=queue,
                    attempt=_attempt(message),
                    headers=dict(message.headers or {}),
                    raw=message,
                    settle=consumer,
                )
        finally:
            await consumer.stop_consuming(amqp_queue)
            if consumer.outstanding == 0:
                await consumer.close_channel()


class _Consumer:
    """One ``consume`` iterator: its channel, its buffer, and the settle hooks of its deliveries."""

    def __init__(self, channel: aio_pika.abc.AbstractRobustChannel, forget: Callable[[_Consumer], None]) -> None:
        self.channel = channel
        self._forget = forget
        self.buffer: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage | None] = asyncio.Queue()
        self.tag: str | None = None
        self.outstanding = 0
        self.stopped = False
        self.transport_closed = False

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if self.stopped:
            # Arrived between our basic.cancel and its CancelOk: hand it straight back.
            await _settle(message, "nack", requeue=True)
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
            with contextlib.suppress(Exception):
                await amqp_queue.cancel(self.tag)
        while not self.buffer.empty():
            message = self.buffer.get_nowait()
            if message is not None and not _channel_dead(message):
                await _settle(message, "nack", requeue=True)

    async def close_channel(self) -> None:
        self._forget(self)
        if self.transport_closed:
            return  # the connection is closing and takes its channels with it
        with contextlib.suppress(Exception):
            await self.channel.close()

    async def _settled(self) -> None:
        self.outstanding -= 1
        if self.stopped and self.outstanding == 0:
            await self.close_channel()

    # _Settler protocol (called by Delivery)

    async def ack(self, delivery: Delivery) -> None:
        await _settle(delivery.raw, "ack")
        await self._settled()

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        await _settle(delivery.raw, "nack", requeue=requeue)
        await self._settled()

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        """No leases in AMQP: a delivery stays ours until the channel closes."""


async def _settle(message: aio_pika.abc.AbstractIncomingMessage, how: str, *, requeue: bool = False) -> None:
    try:
        if how == "ack":
            await message.ack()
        else:
            await message.nack(requeue=requeue)
    except Exception as exc:
        # The channel died (broker restart, connection loss): the broker requeues the
        # message itself, so this delivery will simply come again.
        log.warning("rabbitmq: could not %s delivery %s (%r); it will be redelivered", how, message.delivery_tag, exc)


def _channel_dead(message: aio_pika.abc.AbstractIncomingMessage) -> bool:
    try:
        return bool(message.channel.is_closed)
    except aiormq.exceptions.ChannelInvalidStateError:
        return True


def _attempt(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    headers = message.headers or {}
    count = _as_int(headers.get("x-delivery-count"))
    if count is not None:  # quorum queues: number of earlier deliveries
        return count + 1
    asya = _as_int(headers.get(ATTEMPT_HEADER))
    if asya is not None:
        return asya + (1 if message.redelivered else 0)
    return 2 if message.redelivered else 1


def _as_int(value: object) -> int | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, int | str):
        try:
            return int(value)
        except ValueError:
            return None
    return None
