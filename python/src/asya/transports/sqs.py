"""The ``sqs`` transport, on boto3 (the only transport module that imports it).

Built by ``transports.create`` for the sidecar, crew actors and CLI when
``kind=sqs``; ``settings.url`` is the endpoint (empty for AWS itself, an
ElasticMQ URL in tests), credentials come from boto3's usual chain.

Why shaped so:
- boto3 blocks, so every call runs in a private thread pool; the event loop
  never waits on the network. One client is shared (boto3 clients are
  thread-safe) with a connection pool as large as the pool.
- Long polling (``WaitTimeSeconds``, default 10) keeps idle consumers cheap.
  Closing does not wait for a poll in flight: the poll is abandoned, and if it
  still returns messages its thread makes them visible again at once.
- Every received message is leased for ``visibility_timeout_s`` (passed on
  each receive, so it wins over the queue's attribute). Whoever runs a long
  handler keeps the lease with ``Delivery.extend`` (the sidecar does, every
  third of the lease); ``nack(requeue=True)`` ends the lease now; ``close``
  ends the leases of every delivery left unsettled, like an AMQP channel.
- ``attempt`` is SQS's ``ApproximateReceiveCount``.
- Delays: SQS ``DelaySeconds`` takes whole seconds up to 900. The sub-second
  remainder is awaited here (an asyncio sleep, no thread) so the message
  appears when asked, not up to a second late; longer delays are capped at 900.
- Sends and deletes from concurrent callers share batch requests when the
  queue is busy (``_sqs_support.Batcher``); a lone call still goes out at once.
- Bodies are bytes but SQS carries text: bodies that are non-empty UTF-8 made
  of SQS-legal characters go as they are, anything else base64 with a marker
  attribute. Envelope JSON always goes as is. Headers travel as one JSON
  message attribute (SQS allows only 10 attributes, and headers may nest).
- ``ensure_queue`` also creates ``<queue>-dlq`` and sets a redrive policy
  (``maxReceiveCount``, default 10): a safety net behind the sidecar's own
  ``ASYA_MAX_DELIVERIES`` crash-loop handling, which normally fires first.
  Not for the crew's queues (happy-end, error-end, asya-dlq), which must hold
  on to a message through a long storage outage.
- Every botocore failure leaves as ``TransportError`` (``SQSError`` with SQS's
  error code when the service refused); a message SQS will never take (too
  large, refused as the sender's fault) is a ``PermanentError``.

Options (``TransportSettings.options``): ``wait_time_s`` (1-20, default 10),
``redrive_max_receives`` (default 10, 0 disables the redrive), ``workers``
(thread pool size, default 32), ``queue_prefix`` (default ``asya-``: SQS names
``asya-<x>`` become ``<prefix><x>``, ``<prefix><x>-dlq`` for the redrive queue).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from asya.contracts.envelope import DLQ_NAME, ERROR_END, HAPPY_END, queue_name
from asya.contracts.errors import PermanentError, TransportError
from asya.transports import _sqs_support
from asya.transports._sqs_support import decode_message, encode_message
from asya.transports.base import Delivery, Transport, TransportSettings, override

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024
"""SQS's classic message size limit (body + attributes); larger payloads take the claim check."""
MAX_DELAY_S = 900
"""SQS ``DelaySeconds`` ceiling."""
DLQ_SUFFIX = "-dlq"
_MAX_BATCH = _sqs_support.MAX_BATCH
_NO_REDRIVE = frozenset({DLQ_NAME, queue_name(HAPPY_END), queue_name(ERROR_END)})
"""The crew's queues: their consumers never drop and retry on their own (happy-end keeps a
result unacked while S3 is down), so a redrive would only move messages where nobody looks."""
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}

_T = TypeVar("_T")


class SQSTransport(Transport):
    """Amazon SQS (or ElasticMQ) standard queues."""

    name: ClassVar[str] = "sqs"
    supports_delay: ClassVar[bool] = True
    max_message_bytes: ClassVar[int | None] = MAX_MESSAGE_BYTES

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        opts = settings.options
        self.endpoint_url = settings.url or None
        self.visibility_timeout_s = settings.visibility_timeout_s
        self.wait_time_s = max(1, min(20, int(opts.get("wait_time_s", "10"))))
        self.redrive_max_receives = int(opts.get("redrive_max_receives", "10"))
        self.workers = int(opts.get("workers", "32"))
        self._client: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._urls: dict[str, str] = {}
        self._consumers: set[_sqs_support.Consumer] = set()
        self._closed = True
        self._closing: asyncio.Event | None = None
        self._settler = _Settler(self)
        self._sends: _sqs_support.Batcher | None = None
        self._deletes: _sqs_support.Batcher | None = None

    # --- lifecycle ---

    @override
    async def connect(self) -> None:
        if not self._closed:
            return
        config = botocore.config.Config(
            connect_timeout=5,
            read_timeout=self.wait_time_s + 15,
            retries={"max_attempts": 4, "mode": "standard"},
            max_pool_connections=self.workers,
        )
        self._client = boto3.session.Session().client(
            "sqs", endpoint_url=self.endpoint_url, region_name=self.settings.region, config=config
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="asya-sqs")
        self._closing = asyncio.Event()
        self._sends = _sqs_support.Batcher(self._send_batch, max_bytes=MAX_MESSAGE_BYTES)
        self._deletes = _sqs_support.Batcher(self._delete_batch)
        self._closed = False

    @override
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        assert self._closing is not None
        self._closing.set()
        # Like an AMQP channel closing: whatever this process still holds goes back now.
        unsettled = [d for c in self._consumers for d in c.outstanding.values() if not d.settled]
        for consumer in self._consumers:
            consumer.outstanding.clear()
            if consumer.slot_freed is not None and not consumer.slot_freed.done():
                consumer.slot_freed.set_result(None)
        if unsettled:
            leases: list[_sqs_support.Lease] = [d.raw for d in unsettled]
            for d in unsettled:
                d.settled = True
            await self._release(leases, "close")
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)  # an abandoned long poll finishes (and releases) on its own

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self._pool is None:
            raise RuntimeError("sqs transport is not connected")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _transport_error(exc) from exc

    async def _release(self, leases: list[_sqs_support.Lease], why: str) -> None:
        """Make ``leases`` visible again now; on failure they come back when the lease runs out."""
        try:
            await self._call(_sqs_support.release, self._client, leases)
        except Exception as exc:
            ids = ", ".join(lease.message_id for lease in leases)
            log.warning("sqs: could not release messages %s on %s (%r); they return after their lease", ids, why, exc)

    # --- queues ---

    async def _url(self, queue: str) -> str:
        url = self._urls.get(queue)
        if url is None:
            name = self.settings.broker_queue(queue)
            url = (await self._call(self._client.get_queue_url, QueueName=name))["QueueUrl"]
            self._urls[queue] = url
        return url

    def _create_sync(self, queue: str, attributes: dict[str, str]) -> str:
        queue = self.settings.broker_queue(queue)
        try:
            url: str = self._client.create_queue(QueueName=queue, Attributes=attributes)["QueueUrl"]
        except botocore.exceptions.ClientError as exc:
            # an existing queue with other attributes (made by another tool): use it as it is
            if exc.response.get("Error", {}).get("Code") not in {"QueueAlreadyExists", "QueueNameExists"}:
                raise
            url = self._client.get_queue_url(QueueName=queue)["QueueUrl"]
        return url

    @override
    async def ensure_queue(self, queue: str) -> None:
        attributes = {"VisibilityTimeout": str(math.ceil(self.visibility_timeout_s))}
        if self.redrive_max_receives > 0 and not queue.endswith(DLQ_SUFFIX) and queue not in _NO_REDRIVE:
            dlq_url = await self._call(self._create_sync, queue + DLQ_SUFFIX, {})
            self._urls[queue + DLQ_SUFFIX] = dlq_url
            arn = (await self._call(self._client.get_queue_attributes, QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
                "Attributes"
            ]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": str(self.redrive_max_receives)}
            )
        self._urls[queue] = await self._call(self._create_sync, queue, attributes)

    @override
    async def delete_queue(self, queue: str) -> None:
        for name in (queue, queue + DLQ_SUFFIX):
            try:
                url = await self._url(name)
                await self._call(self._client.delete_queue, QueueUrl=url)
            except _sqs_support.SQSError as exc:
                if exc.code not in _MISSING_QUEUE:
                    raise
            self._urls.pop(name, None)

    @override
    async def queue_depth(self, queue: str) -> int:
        try:
            attrs = await self._call(
                self._client.get_queue_attributes,
                QueueUrl=await self._url(queue),
                AttributeNames=["ApproximateNumberOfMessages"],
            )
        except _sqs_support.SQSError as exc:
            if exc.code not in _MISSING_QUEUE:
                raise
            return 0  # like the other transports: a queue nobody made holds nothing
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    # --- publish ---

    @override
    async def publish(
        self, queue: str, body: bytes, *, headers: Mapping[str, Any] | None = None, delay_s: float = 0.0
    ) -> None:
        if delay_s < 0:
            raise ValueError(f"negative delay {delay_s}")
        text, attributes = encode_message(body, headers)
        size = len(text.encode()) + sum(len(k) + len(v["StringValue"].encode()) for k, v in attributes.items())
        if size > MAX_MESSAGE_BYTES:
            raise PermanentError(
                f"message of {size} bytes exceeds SQS's {MAX_MESSAGE_BYTES}; offload the payload (claim check)"
            )
        if delay_s > MAX_DELAY_S:
            log.warning("sqs: delay %.1fs capped at %ds", delay_s, MAX_DELAY_S)
            delay_s = MAX_DELAY_S
        whole = math.floor(delay_s)
        if delay_s > whole and self._closing is not None:
            # SQS delays in whole seconds; wait the fraction here so the message is not late
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay_s - whole)
        url = await self._url(queue)
        entry: dict[str, Any] = {"MessageBody": text, "MessageAttributes": attributes}
        if whole:
            entry["DelaySeconds"] = whole
        assert self._sends is not None
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):  # no task per publish, unlike wait_for
                await self._sends.submit(url, entry, size)
        except TimeoutError as exc:
            raise TransportError(
                f"sqs: send to {queue!r} not confirmed within {self.settings.publish_timeout_s}s"
            ) from exc
        except _sqs_support.SQSError as exc:
            if exc.sender_fault:  # SQS judged the message itself: sending it again fails the same way
                raise PermanentError(f"sqs refused a message to {queue!r} for good: {exc}") from exc
            raise

    async def _send_batch(self, url: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        resp: dict[str, Any] = await self._call(self._client.send_message_batch, QueueUrl=url, Entries=entries)
        return resp

    async def _delete_batch(self, url: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        resp: dict[str, Any] = await self._call(self._client.delete_message_batch, QueueUrl=url, Entries=entries)
        return resp

    # --- consume ---

    @override
    async def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[Delivery]:
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        url = await self._url(queue)
        consumer = _sqs_support.Consumer()
        self._consumers.add(consumer)
        buffered: collections.deque[dict[str, Any]] = collections.deque()
        try:
            while not self._closed:
                if buffered:
                    msg = buffered.popleft()
                    delivery = self._delivery(queue, url, msg, consumer)
                    consumer.outstanding[delivery.raw.receipt] = delivery
                    yield delivery
                    continue
                free = prefetch - len(consumer.outstanding)
                if free <= 0:
                    consumer.slot_freed = asyncio.get_running_loop().create_future()
                    await consumer.slot_freed
                    continue
                buffered.extend(await self._poll(url, min(free, _MAX_BATCH)))
        finally:
            self._consumers.discard(consumer)
            if buffered and not self._closed:
                # received but never handed out: make them visible again for other consumers
                leases = [_sqs_support.Lease(url, m["ReceiptHandle"], m["MessageId"], consumer) for m in buffered]
                await self._release(leases, "end of consume")

    async def _poll(self, url: str, limit: int) -> list[dict[str, Any]]:
        assert self._closing is not None
        receive = functools.partial(
            self._client.receive_message,
            QueueUrl=url,
            MaxNumberOfMessages=limit,
            WaitTimeSeconds=self.wait_time_s,
            VisibilityTimeout=math.ceil(self.visibility_timeout_s),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        try:
            return await _sqs_support.long_poll(self._client, url, receive, self._closing)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _transport_error(exc) from exc

    def _delivery(self, queue: str, url: str, msg: dict[str, Any], consumer: _sqs_support.Consumer) -> Delivery:
        body, headers = decode_message(msg["Body"], msg.get("MessageAttributes") or {}, msg["MessageId"])
        attempt = int(msg.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        lease = _sqs_support.Lease(url, msg["ReceiptHandle"], msg["MessageId"], consumer)
        return Delivery(
            body=body,
            queue=queue,
            attempt=attempt,
            headers=headers,
            raw=lease,
            settle=self._settler,
            message_id=lease.message_id,
        )

    # --- settling (called through Delivery) ---

    async def _settle(self, delivery: Delivery, what: str, visibility: int | None = None) -> None:
        """Delete the message (``visibility`` None) or set its visibility; tolerate an expired lease."""
        lease: _sqs_support.Lease = delivery.raw
        lease.consumer.settled(lease)
        if self._closed:
            log.warning("sqs transport closed before %s of message %s; it will be redelivered", what, lease.message_id)
            return
        try:
            if visibility is None:
                assert self._deletes is not None
                await self._deletes.submit(lease.queue_url, {"ReceiptHandle": lease.receipt})
            else:
                await self._call(
                    self._client.change_message_visibility,
                    QueueUrl=lease.queue_url,
                    ReceiptHandle=lease.receipt,
                    VisibilityTimeout=visibility,
                )
        except RuntimeError:
            if not self._closed:
                raise
            # close() raced this settle (its batch was still queued): same outcome as settling after close
            log.warning("sqs transport closed during %s of message %s; it will be redelivered", what, lease.message_id)
        except _sqs_support.SQSError as exc:
            # the lease expired and someone else holds the message now: nothing of ours to settle
            if not _sqs_support.lease_gone(exc.code):
                raise
            log.warning("sqs: lease on message %s expired before %s (%s)", lease.message_id, what, exc.code)


class _Settler:
    """The ``Delivery`` settle hooks, kept off the transport's public surface."""

    def __init__(self, transport: SQSTransport) -> None:
        self._t = transport

    async def ack(self, delivery: Delivery) -> None:
        await self._t._settle(delivery, "ack")

    async def nack(self, delivery: Delivery, requeue: bool) -> None:
        await self._t._settle(delivery, "nack", 0 if requeue else None)

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        lease: _sqs_support.Lease = delivery.raw
        if delivery.settled or self._t._closed:
            return
        await self._t._call(
            self._t._client.change_message_visibility,
            QueueUrl=lease.queue_url,
            ReceiptHandle=lease.receipt,
            VisibilityTimeout=min(43200, math.ceil(seconds)),
        )


def _transport_error(exc: Exception) -> TransportError:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return _sqs_support.SQSError(str(error.get("Code", "")), str(error.get("Message", exc)))
    return TransportError(f"sqs: {exc!r}")
