"""Sending envelopes to actor queues, and knowing which were sent for the delivery at hand.

``Publisher.send`` declares the destination queue once per process, moves a
payload over the claim-check threshold to the object store, and returns once
the broker confirmed the message. It records each sent id for the delivery
being processed (a context variable, shared with the publish tasks of a
fan-out), which is what progress reports list as ``outputs``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from typing import Any

from asya import tracing
from asya.contracts import encode_envelope, queue_name
from asya.contracts.envelope import Envelope, stamp_published
from asya.sidecar.observability import SidecarMetrics
from asya.storage import claimcheck
from asya.transports import Transport

_sent: contextvars.ContextVar[list[str]] = contextvars.ContextVar("asya_sent")


def track() -> list[str]:
    """Start recording the ids published on behalf of the current delivery; returns the live list."""
    sent: list[str] = []
    _sent.set(sent)
    return sent


def note(env_id: str) -> None:
    sent = _sent.get(None)
    if sent is not None:
        sent.append(env_id)


class Publisher:
    """Sends envelopes to actor queues; see the module docstring."""

    def __init__(
        self,
        transport: Transport,
        metrics: SidecarMetrics,
        store: claimcheck.BlobStore | None = None,
        threshold: int = 0,
        kind: str = "",
    ) -> None:
        self._transport = transport
        self._kind = kind  # messaging.system of the publish spans
        self._metrics = metrics
        self._ensured: set[str] = set()
        self._store = store
        self._threshold = threshold

    async def send(self, actor: str, env: Envelope) -> None:
        queue, body, span = await self.prepare(actor, env)
        await self.publish(actor, env, queue, body, span)

    async def prepare(self, actor: str, env: Envelope) -> tuple[str, bytes, Any]:
        """Everything before the publish itself: the queue exists, a large payload is in the store.

        With tracing on, the publish span starts here because its context goes into the body; it is
        None otherwise (and always ended by ``publish``).
        """
        queue = queue_name(actor)
        if queue not in self._ensured:
            await self._transport.ensure_queue(queue)
            self._ensured.add(queue)
        if self._store is not None:
            env = await claimcheck.offload(env, self._store, self._threshold)
        span = tracing.start_publish(env, self._kind, queue) if tracing.ENABLED else None
        return queue, encode_envelope(stamp_published(env)), span

    async def publish(self, actor: str, env: Envelope, queue: str, body: bytes, span: Any = None) -> None:
        """Publish what ``prepare`` returned and wait for the broker's confirm."""
        if span is None:
            await self._transport.publish(queue, body)
        else:
            try:
                await self._transport.publish(queue, body)
            except BaseException as exc:
                tracing.fail(span, exc)
                raise
            finally:
                span.end()
        self._metrics.outputs_published.labels(destination=actor).inc()
        note(str(env.get("id")))


class OrderedSends:
    """Publishes a fan-out in the order it is given, with up to ``window`` broker confirms outstanding.

    Each output is prepared (queue declared, claim check) in order, then its publish starts as a task
    and the next output waits until that task has run up to its first suspension: for RabbitMQ that is
    the channel's write lock (FIFO) or the socket drain, so frames go out in order while the confirms
    are awaited together. A failed publish fails ``put``/``drain`` (the input is given back).
    """

    def __init__(self, publisher: Publisher, window: int) -> None:
        self._publisher = publisher
        self._window = window
        self._pending: collections.deque[asyncio.Task[None]] = collections.deque()

    async def put(self, actor: str, env: Envelope) -> None:
        queue, body, span = await self._publisher.prepare(actor, env)
        while len(self._pending) >= self._window:
            await self._pending.popleft()  # oldest first: confirms come back in publish order anyway
        self._pending.append(asyncio.create_task(self._publisher.publish(actor, env, queue, body, span)))
        await asyncio.sleep(0)  # let it take its place at the channel before the next one starts

    async def drain(self) -> None:
        """Wait for every confirm (the first failure raises)."""
        while self._pending:
            await self._pending.popleft()

    def cancel(self) -> None:
        for task in self._pending:
            task.cancel()
        self._pending.clear()
