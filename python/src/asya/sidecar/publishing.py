"""Sending envelopes to actor queues, and knowing which were sent for the delivery at hand.

``Publisher.send`` declares the destination queue once per process, moves a
payload over the claim-check threshold to the object store, and returns once
the broker confirmed the message. It records each sent id for the delivery
being processed (a context variable, shared with the publish tasks of a
fan-out), which is what progress reports list as ``outputs``.
"""

from __future__ import annotations

import contextvars

from asya.contracts import encode_envelope, queue_name
from asya.contracts.envelope import Envelope
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
    ) -> None:
        self._transport = transport
        self._metrics = metrics
        self._ensured: set[str] = set()
        self._store = store
        self._threshold = threshold

    async def send(self, actor: str, env: Envelope) -> None:
        queue = queue_name(actor)
        if queue not in self._ensured:
            await self._transport.ensure_queue(queue)
            self._ensured.add(queue)
        if self._store is not None:
            env = await claimcheck.offload(env, self._store, self._threshold)
        await self._transport.publish(queue, encode_envelope(env))
        self._metrics.outputs_published.labels(destination=actor).inc()
        note(str(env.get("id")))
