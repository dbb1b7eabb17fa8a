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
import collections
import contextlib
import json
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from asya.transports.base import Delivery

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


class BatchEntryError(Exception):
    """SQS refused one entry of a batch request; ``code`` is its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


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
                    future.set_exception(BatchEntryError(str(f.get("Code")), str(f.get("Message", ""))))
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


def decode_message(text: str, attributes: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Inverse of ``encode_message``."""
    headers: dict[str, Any] = {}
    raw_headers = attributes.get(HEADERS_ATTR)
    if raw_headers:
        with contextlib.suppress(ValueError):
            headers = json.loads(raw_headers.get("StringValue", "{}"))
    encoding = (attributes.get(ENCODING_ATTR) or {}).get("StringValue")
    if encoding == "base64":
        return (b"" if text == "=" else base64.b64decode(text)), headers
    return text.encode("utf-8"), headers


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
