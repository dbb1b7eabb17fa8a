"""The ``rabbitmq`` transport, on aio-pika (the only module that imports it).

Built by ``transports.create`` for the sidecar, crew actors and CLI when
``kind=rabbitmq``. One robust connection per transport; queues are durable
and bound to the default exchange (routing key = broker queue name) and to
0.1.x's topic exchange (routing key = actor name); messages are persistent;
every publish waits for its publisher confirm. Queue names, the exchange and
adopting queues that exist with other arguments: ``_rabbitmq_topology``.

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
- ``attempt``: quorum queues count deliveries in ``x-delivery-count`` (+1).
  Classic queues count nothing, so ``nack(requeue=True)`` there republishes
  the body with ``x-asya-attempt`` raised by one (confirmed) and then acks the
  original; if that republish fails it falls back to a plain requeue. A
  delivery flagged ``redelivered`` (a consumer died holding it) counts one more
  than its header says, at least 2.
- Every aio-pika/aiormq failure leaves as ``TransportError`` (from the SDK
  exception); a publish not confirmed within ``publish_timeout_s`` too.

Options (``TransportSettings.options``): ``queue_type`` (``classic`` |
``quorum``), ``queue_prefix`` (default ``asya-``), ``exchange`` (default
``asya``, ``""`` for none), ``reconnect_interval_s`` (default 2),
``publish_timeout_s`` (default ``TransportSettings.publish_timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

import aio_pika
import aio_pika.abc
import aiormq.exceptions
from aiormq import spec

from asya.contracts.errors import PermanentError, TransportError, TransportFeatureNotSupported
from asya.transports import _rabbitmq_consumer as _rmq
from asya.transports import _rabbitmq_topology as _topology
from asya.transports.base import ATTEMPT_HEADER, Delivery, Transport, TransportSettings, override

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
# Everything the SDK raises when the broker or the link to it fails (TimeoutError is an OSError).
_BROKER_ERRORS: tuple[type[Exception], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.AMQPException,
    aiormq.exceptions.ChannelInvalidStateError,
    OSError,
)


class PublishNotConfirmedError(TransportError):
    """The broker returned (no such queue) or nacked a publish: it was not stored."""


@contextlib.contextmanager
def _broker_call(what: str) -> Iterator[None]:
    """Re-raise SDK failures of ``what`` as ``TransportError`` (chained), so callers see one type."""
    try:
        yield
    except TransportError:
        raise
    except _BROKER_ERRORS as exc:
        raise TransportError(f"rabbitmq: {what} failed: {exc!r}") from exc


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
        self.counts_deliveries = queue_type == "quorum"
        """Quorum queues keep ``x-delivery-count``; classic ones need our header (see ``_rmq.Consumer.nack``)."""
        self.topology = _topology.Topology(opts, self.queue_arguments)
        self.reconnect_interval_s = float(opts.get("reconnect_interval_s", "2"))
        self.publish_timeout_s = float(opts.get("publish_timeout_s", settings.publish_timeout_s))
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._publisher: aio_pika.abc.AbstractRobustChannel | None = None
        self._consumers: set[_rmq.Consumer] = set()

    # --- lifecycle ---

    @override
    async def connect(self) -> None:
        if self._connection is not None:
            return
        with _broker_call("connect"):
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

    async def _open_channel(self) -> aio_pika.abc.AbstractRobustChannel:
        conn = self._conn()
        for _ in range(3):  # the connection may drop again between "connected" and the channel open
            if not conn.connected.is_set():  # reconnecting after a broker restart: wait rather than fail
                try:
                    await asyncio.wait_for(conn.connected.wait(), self.publish_timeout_s)
                except TimeoutError as exc:
                    raise TransportError(f"rabbitmq: no connection within {self.publish_timeout_s}s") from exc
            try:
                channel: aio_pika.abc.AbstractRobustChannel = await conn.channel(publisher_confirms=False)
                return channel
            except RuntimeError as exc:  # aio-pika: "Connection was not opened" (it dropped meanwhile)
                if conn.connected.is_set() or conn.is_closed:
                    raise TransportError(f"rabbitmq: could not open a channel: {exc!r}") from exc
        raise TransportError("rabbitmq: could not open a channel: the connection keeps dropping")

    @contextlib.asynccontextmanager
    async def _admin_channel(self) -> AsyncIterator[aio_pika.abc.AbstractRobustChannel]:
        # A short-lived channel: a 404/406 from the broker closes only this one.
        channel = await self._open_channel()
        try:
            yield channel
        finally:
            try:
                await channel.close()
            except Exception as exc:  # the broker closed it already (404/406 or a lost connection)
                log.debug("rabbitmq: admin channel close failed: %r", exc)

    # --- queues ---

    @override
    async def ensure_queue(self, queue: str) -> None:
        with _broker_call(f"declare of queue {self.topology.broker(queue)!r}"):
            await self.topology.ensure(self._open_channel, queue)

    @override
    async def delete_queue(self, queue: str) -> None:
        name = self.topology.broker(queue)
        with _broker_call(f"delete of queue {name!r}"):
            async with self._admin_channel() as channel:
                await channel.queue_delete(name)
        self.topology.adopted.discard(name)

    @override
    async def queue_depth(self, queue: str) -> int:
        name = self.topology.broker(queue)
        try:
            with _broker_call(f"depth of queue {name!r}"):
                async with self._admin_channel() as channel:
                    declared = await channel.declare_queue(name, passive=True, robust=False)
        except TransportError as exc:
            if isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                return 0
            raise
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
        # Straight to aiormq: an aio_pika.Message is ~40 guarded attribute sets per publish, and
        # Exchange.publish only forwards to the same channel call (which raises on return or nack).
        properties = spec.Basic.Properties(delivery_mode=2, headers=dict(headers) if headers else None)
        await self._publish(queue, bytes(body), properties)

    async def _publish(self, canonical: str, body: bytes, properties: spec.Basic.Properties) -> None:
        """Publish ``message`` to ``canonical``'s queue and wait for its confirm, riding out a reconnect, bounded."""
        queue = self.topology.broker(canonical)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout_s
        while True:
            channel = self._publisher
            if channel is None:
                raise RuntimeError("rabbitmq transport is not connected")
            try:
                if channel.is_closed:
                    raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
                underlay = await channel.get_underlay_channel()
                await underlay.basic_publish(
                    body,
                    routing_key=queue,
                    properties=properties,
                    mandatory=True,
                    timeout=max(deadline - loop.time(), 0.001),
                )
                return
            except TimeoutError as exc:
                raise TransportError(
                    f"rabbitmq: publish to {queue!r} not confirmed within {self.publish_timeout_s}s"
                ) from exc
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
                    raise TransportError(f"rabbitmq: publish to {queue!r} failed: {exc!r}") from exc
                log.info("rabbitmq: publish to %r interrupted (%r); waiting for the connection", queue, exc)
                try:
                    await asyncio.wait_for(channel.ready(), remaining)
                except TimeoutError as timeout:
                    raise TransportError(
                        f"rabbitmq: publish to {queue!r}: no connection within {self.publish_timeout_s}s"
                    ) from timeout
            except _BROKER_ERRORS as exc:
                raise TransportError(f"rabbitmq: publish to {queue!r} failed: {exc!r}") from exc

    async def _requeue_counted(self, delivery: Delivery) -> None:
        """Classic queues: put the message back as a copy whose ``x-asya-attempt`` says the next attempt."""
        raw: aio_pika.abc.AbstractIncomingMessage = delivery.raw
        headers = dict(raw.headers or {})
        headers.pop("x-delivery-count", None)  # the broker's count of the original, not of this copy
        headers[ATTEMPT_HEADER] = delivery.attempt + 1
        message = aio_pika.Message(
            raw.body,
            headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=delivery.message_id,
            content_type=raw.content_type,
            content_encoding=raw.content_encoding,
            correlation_id=raw.correlation_id,
            priority=raw.priority,
        )
        await self._publish(delivery.queue, message.body, message.properties)

    # --- consume ---

    @override
    async def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[Delivery]:
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        name = self.topology.broker(queue)
        with _broker_call(f"consume from {name!r}"):
            await self.topology.ensure(self._open_channel, queue)  # bound, or adopted as it is
            channel = await self._open_channel()
        adopted = name in self.topology.adopted
        requeue = None if self.counts_deliveries and not adopted else self._requeue_counted
        consumer = _rmq.Consumer(channel, self._consumers.discard, requeue)
        self._consumers.add(consumer)
        amqp_queue: aio_pika.abc.AbstractRobustQueue | None = None
        try:
            with _broker_call(f"consume from {name!r}"):
                await channel.set_qos(prefetch_count=prefetch)
                # Robust declare: after a reconnect aio-pika re-declares the queue (passively when adopted)
                # and re-attaches the consumer.
                if adopted:
                    amqp_queue = await channel.declare_queue(name, passive=True)
                else:
                    amqp_queue = await channel.declare_queue(name, durable=True, arguments=self.queue_arguments)
                consumer.tag = await amqp_queue.consume(consumer.on_message)
            while True:
                message = await consumer.buffer.get()
                if message is None:
                    return  # transport closed
                if _rmq.channel_dead(message):
                    # Buffered before the channel died; the broker already requeued it.
                    continue
                consumer.outstanding += 1
                yield Delivery(
                    body=message.body,
                    queue=queue,
                    attempt=_rmq.attempt(message),
                    headers=dict(message.headers or {}),
                    raw=message,
                    settle=consumer,
                    message_id=_rmq.message_id(message),
                )
        finally:
            await consumer.stop_consuming(amqp_queue)
            if consumer.outstanding == 0:
                await consumer.close_channel()
