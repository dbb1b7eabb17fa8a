"""Helpers of the ``sqs`` transport that need no boto3: the body codec and call batching.

Imported only by ``asya.transports.sqs``; kept apart so that module
stays about the broker conversation and these pure pieces (codec, batching,
long polls in daemon threads) are testable on their own.

Batching: SQS charges (in latency and, on AWS, money) per request, and boto3
spends about a millisecond of CPU per call. ``Batcher`` coalesces concurrent
single operations (send, delete) into batch requests of up to 10 entries
(and 256 KiB for sends). Nothing waits for a batch to fill: while fewer than
``max_inflight`` requests are running, a lone call goes out at once; only when
the queue is busy do callers arriving meanwhile share the next request. Each
caller still learns the fate of its own entry.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from asya.contracts.errors import TransportError
from asya.transports.base import Delivery

log = logging.getLogger("asya.transports.sqs")

T = TypeVar("T")

HEADERS_ATTR = "asya-headers"
ENCODING_ATTR = "asya-body-encoding"
MAX_BATCH = 10
"""SQS batch limit (receive, send, delete, change visibility)."""
# Characters SQS accepts in a message body (anything else is rejected by the service).
_SQS_TEXT = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+$")


class Poll:
    """One long poll in a worker thread; the event loop may abandon it when closing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.handed_over = False


def in_daemon_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run blocking ``fn(*args)`` in a new daemon thread; its result arrives as a future on this loop.

    For SQS long polls: the thread pool's threads are joined at interpreter exit, so an
    abandoned poll there would hold a stopping process for up to WaitTimeSeconds. A daemon
    thread simply dies with the process (its messages then come back when their lease
    ends, as after any crash).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as e:  # handed to the awaiting coroutine
            result, exc = None, e
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, result, exc)

    threading.Thread(target=run, name="asya-sqs-poll", daemon=True).start()
    return future


async def long_poll(
    client: Any, url: str, receive: Callable[[], dict[str, Any]], closing: asyncio.Event
) -> list[dict[str, Any]]:
    """Run ``receive`` (a ReceiveMessage call) in a daemon thread; give up at once when ``closing`` is set.

    A poll given up on may still return messages later: its thread then makes them visible again.
    """
    poll = Poll()

    def run() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = receive().get("Messages", [])
        with poll.lock:
            if not poll.abandoned:
                poll.handed_over = True
                return messages
        if messages:
            leases = [Lease(url, m["ReceiptHandle"], m["MessageId"], Consumer()) for m in messages]
            try:
                release(client, leases)
            except Exception as exc:  # nobody awaits this thread: say it here
                ids = ", ".join(lease.message_id for lease in leases)
                log.warning("sqs: could not release messages %s of an abandoned poll (%r)", ids, exc)
        return []

    future = in_daemon_thread(run)
    closed: asyncio.Future[Any] = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait([future, closed], return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
    if not future.done():
        with poll.lock:
            if not poll.handed_over:
                poll.abandoned = True
        if poll.abandoned:
            future.add_done_callback(lambda f: f.exception())  # consume a late error quietly
            return []
    return await future


class SQSError(TransportError):
    """SQS refused a request or one entry of a batch; ``code`` is its error code.

    ``sender_fault`` is SQS's own verdict on a batch entry: the request itself was wrong
    (bad contents, too large), so sending it again cannot help.
    """

    def __init__(self, code: str, message: str, *, sender_fault: bool = False) -> None:
        super().__init__(f"sqs: {code}: {message}")
        self.code = code
        self.sender_fault = sender_fault


LEASE_GONE_CODES = frozenset({"MessageNotInflight", "InvalidParameterValue"})


def lease_gone(code: str) -> bool:
    """True when SQS refused a settle because our receipt handle no longer holds the message."""
    return "ReceiptHandle" in code or code in LEASE_GONE_CODES


BatchFn = Callable[[str, list[dict[str, Any]]], Awaitable[dict[str, Any]]]


class Batcher:
    """Coalesces concurrent single entries for one SQS batch API into batch requests."""

    def __init__(self, call: BatchFn, *, max_inflight: int = 4, max_bytes: int | None = None) -> None:
        self._call = call
        self._max_inflight = max_inflight
        self._max_bytes = max_bytes
        self._pending: dict[str, collections.deque[tuple[dict[str, Any], int, asyncio.Future[None]]]] = (
            collections.defaultdict(collections.deque)
        )
        self._inflight: dict[str, int] = collections.defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, url: str, entry: dict[str, Any], size: int = 0) -> None:
        """Send ``entry`` (without ``Id``) in some batch to ``url``; raise if SQS refused it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[url].append((entry, size, future))
        self._kick(url)
        await future

    def _kick(self, url: str) -> None:
        pending = self._pending[url]
        while pending and self._inflight[url] < self._max_inflight:
            batch = [pending.popleft()]
            total = batch[0][1]
            while pending and len(batch) < MAX_BATCH:
                if self._max_bytes is not None and total + pending[0][1] > self._max_bytes:
                    break
                total += pending[0][1]
                batch.append(pending.popleft())
            self._inflight[url] += 1
            task = asyncio.get_running_loop().create_task(self._flush(url, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, url: str, batch: list[tuple[dict[str, Any], int, asyncio.Future[None]]]) -> None:
        try:
            entries = [{**entry, "Id": str(n)} for n, (entry, _, _) in enumerate(batch)]
            resp = await self._call(url, entries)
            failed = {f["Id"]: f for f in resp.get("Failed", [])}
            for n, (_, _, future) in enumerate(batch):
                if future.done():
                    continue
                if str(n) in failed:
                    f = failed[str(n)]
                    error = SQSError(
                        str(f.get("Code")), str(f.get("Message", "")), sender_fault=bool(f.get("SenderFault"))
                    )
                    future.set_exception(error)
                else:
                    future.set_result(None)
        except BaseException as exc:  # the whole request failed: every caller hears it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._inflight[url] -= 1
            self._kick(url)


def encode_message(body: bytes, headers: Mapping[str, Any] | None) -> tuple[str, dict[str, dict[str, str]]]:
    """SQS body text and message attributes for ``body`` + ``headers``."""
    attributes: dict[str, dict[str, str]] = {}
    if headers:
        attributes[HEADERS_ATTR] = {
            "DataType": "String",
            "StringValue": json.dumps(dict(headers), separators=(",", ":"), default=str),
        }
    try:
        text = body.decode("utf-8")
        if not _SQS_TEXT.match(text):
            raise ValueError("characters SQS does not carry")
    except ValueError:
        text = base64.b64encode(body).decode("ascii") or "="
        attributes[ENCODING_ATTR] = {"DataType": "String", "StringValue": "base64"}
    return text, attributes


def decode_message(text: str, attributes: Mapping[str, Any], message_id: str = "") -> tuple[bytes, dict[str, Any]]:
    """Inverse of ``encode_message``.

    A message some other publisher made can carry attributes we cannot read: it is still
    delivered (headers dropped, body as sent), with one warning naming the message.
    """
    headers: dict[str, Any] = {}
    raw_headers = attributes.get(HEADERS_ATTR)
    if raw_headers:
        try:
            parsed = json.loads(raw_headers.get("StringValue", "{}"))
            if not isinstance(parsed, dict):
                raise ValueError(f"a JSON {type(parsed).__name__}, not an object")
            headers = parsed
        except (ValueError, AttributeError) as exc:
            log.warning("sqs: message %s: dropped unreadable %s attribute (%s)", message_id, HEADERS_ATTR, exc)
    encoding = (attributes.get(ENCODING_ATTR) or {}).get("StringValue")
    if encoding == "base64":
        try:
            return (b"" if text == "=" else base64.b64decode(text, validate=True)), headers
        except (binascii.Error, ValueError) as exc:
            log.warning("sqs: message %s: body marked base64 but is not (%s); delivered as sent", message_id, exc)
    elif encoding is not None:
        log.warning("sqs: message %s: unknown body encoding %r; delivered as sent", message_id, encoding)
    return text.encode("utf-8"), headers


def release(client: Any, leases: list[Lease]) -> None:
    """Make the leased messages visible again now (blocking; runs in a worker thread)."""
    by_url: dict[str, list[Lease]] = collections.defaultdict(list)
    for lease in leases:
        by_url[lease.queue_url].append(lease)
    for url, group in by_url.items():
        for i in range(0, len(group), MAX_BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": lease.receipt, "VisibilityTimeout": 0}
                for n, lease in enumerate(group[i : i + MAX_BATCH])
            ]
            resp = client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            for failed in resp.get("Failed", []):  # it comes back when its lease runs out instead
                lease = group[i + int(failed["Id"])]
                log.warning("sqs: could not release message %s (%s)", lease.message_id, failed.get("Code"))


class Lease:
    """What an SQS ``Delivery.raw`` holds: where the message lives and its receipt handle."""

    __slots__ = ("consumer", "message_id", "queue_url", "receipt")

    def __init__(self, queue_url: str, receipt: str, message_id: str, consumer: Consumer) -> None:
        self.queue_url = queue_url
        self.receipt = receipt
        self.message_id = message_id
        self.consumer = consumer


class Consumer:
    """Book-keeping of one ``consume`` iterator: deliveries yielded and not yet settled."""

    def __init__(self) -> None:
        self.outstanding: dict[str, Delivery] = {}
        self.slot_freed: asyncio.Future[None] | None = None

    def settled(self, lease: Lease) -> None:
        self.outstanding.pop(lease.receipt, None)
        if self.slot_freed is not None and not self.slot_freed.done():
            self.slot_freed.set_result(None)
