"""The transport interface every broker adapter implements.

A transport moves opaque bytes between named queues with at-least-once
delivery. The sidecar, the crew actors and the CLI only ever talk to this
protocol; broker SDKs are imported inside their own module and nowhere else.

Contract, in words:
- ``publish`` returns only after the broker has durably accepted the message
  (publisher confirm, SQS 200, local fsync'd commit). If it raises, the message
  may or may not have been stored: callers treat that as "not sent".
- ``consume`` yields ``Delivery`` objects; at most ``prefetch`` are
  unacknowledged at a time. A delivery that is neither acked nor nacked before
  the consumer dies comes back (redelivery).
- ``Delivery.attempt`` counts deliveries of this message, starting at 1, from
  the broker's own counter where it keeps one (quorum ``x-delivery-count``,
  SQS ``ApproximateReceiveCount``, the local lease count); on RabbitMQ classic
  queues ``nack(requeue=True)`` republishes with ``x-asya-attempt`` raised by one.
  The consumer engine dead-letters a message whose attempt passes its limit.
- Failures: every broker failure leaves a transport operation as
  ``TransportError`` (chained to the SDK's exception), so callers can tell
  "the broker is in trouble, give the delivery back" from a bug. Only a message
  the broker will never take (too large) is a ``PermanentError``.
- Names: callers speak canonical queue names (``contracts.queue_name(actor)``
  = ``asya-<actor>``, ``asya-dlq``). A transport whose queues other tools see
  (rabbitmq, sqs) maps ``asya-<x>`` to ``<queue_prefix><x>`` on the broker in
  every operation (option ``queue_prefix``, default ``asya-``); names without
  the canonical prefix are used as they are. ``Delivery.queue`` stays canonical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from asya.contracts.envelope import QUEUE_PREFIX

if TYPE_CHECKING:
    from typing_extensions import override as override
else:  # typing.override is 3.12+; at run time the decorator only documents intent

    def override(fn):
        return fn


ATTEMPT_HEADER = "x-asya-attempt"
"""Transport-level header counting deliberate requeues (not part of the envelope)."""
QUEUE_PREFIX_OPTION = "queue_prefix"
"""``TransportSettings.options`` key: what replaces ``asya-`` in queue names on the broker."""
PREFIXED_KINDS = frozenset({"rabbitmq", "sqs"})
"""Transports that apply ``queue_prefix`` (the local transport's queues are private to Asya)."""


def broker_queue_name(queue: str, prefix: str) -> str:
    """The broker's name for canonical ``queue``: ``asya-<x>`` becomes ``<prefix><x>``; other names are kept."""
    if queue.startswith(QUEUE_PREFIX):
        return prefix + queue[len(QUEUE_PREFIX) :]
    return queue


@dataclasses.dataclass(frozen=True)
class TransportSettings:
    """How to reach a broker; parsed once from env or CLI flags."""

    kind: str = "local"
    """One of ``local``, ``rabbitmq``, ``sqs``."""
    url: str = ""
    """Broker address: ``amqp://user:pass@host:port/vhost``, an SQS endpoint, or a local directory."""
    region: str = "us-east-1"
    """SQS only: AWS region name."""
    visibility_timeout_s: float = 60.0
    """How long a received but unacknowledged message stays hidden (local, sqs), seconds."""
    publish_timeout_s: float = 30.0
    """Longest wait for the broker to confirm a publish, seconds; on expiry ``TransportError``."""
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Transport-specific extras (e.g. ``queue_type`` for RabbitMQ, ``queue_prefix``)."""

    @property
    def queue_prefix(self) -> str:
        """What replaces ``asya-`` in queue names on the broker (``""``: the actor name is the queue name)."""
        return self.options.get(QUEUE_PREFIX_OPTION, QUEUE_PREFIX)

    def broker_queue(self, queue: str) -> str:
        """The name canonical ``queue`` has on this broker: for KEDA triggers, dashboards, foreign publishers."""
        if self.kind not in PREFIXED_KINDS:
            return queue
        return broker_queue_name(queue, self.queue_prefix)


class Delivery:
    """One received message, with a neutral way to settle it.

    ``raw`` is the broker's own object, for the rare case that needs it;
    ``message_id`` is the broker's id for the message (SQS MessageId, AMQP
    message_id or a digest of the body, local row id), for log lines.
    """

    __slots__ = ("_settle", "attempt", "body", "headers", "message_id", "queue", "raw", "settled")

    def __init__(
        self,
        *,
        body: bytes,
        queue: str,
        attempt: int,
        headers: Mapping[str, Any],
        raw: Any,
        settle: _Settler,
        message_id: str = "",
    ) -> None:
        self.body = body
        self.message_id = message_id
        self.queue = queue
        self.attempt = attempt
        self.headers = headers
        self.raw = raw
        self.settled = False
        self._settle = settle

    async def ack(self) -> None:
        """Remove the message from the queue for good."""
        if not self.settled:
            self.settled = True
            await self._settle.ack(self)

    async def nack(self, *, requeue: bool = True) -> None:
        """Give the message back (``requeue``) so it is delivered again."""
        if not self.settled:
            self.settled = True
            await self._settle.nack(self, requeue)

    async def extend(self, seconds: float) -> None:
        """Keep the message hidden for ``seconds`` more (no-op where leases don't exist)."""
        await self._settle.extend(self, seconds)


class _Settler(Protocol):
    async def ack(self, delivery: Delivery) -> None: ...
    async def nack(self, delivery: Delivery, requeue: bool) -> None: ...
    async def extend(self, delivery: Delivery, seconds: float) -> None: ...


class Transport(Protocol):
    """What the sidecar needs from a broker."""

    name: ClassVar[str]
    supports_delay: ClassVar[bool]
    """True when ``publish(delay_s=...)`` is honoured by the broker itself."""
    max_message_bytes: ClassVar[int | None]
    """Largest body the broker accepts, None if effectively unlimited."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_queue(self, queue: str) -> None:
        """Create ``queue`` (durable) if it does not exist; idempotent."""
        ...

    async def delete_queue(self, queue: str) -> None: ...

    async def publish(
        self, queue: str, body: bytes, *, headers: Mapping[str, Any] | None = None, delay_s: float = 0.0
    ) -> None:
        """Send ``body`` to ``queue``; returns once the broker has confirmed it."""
        ...

    def consume(self, queue: str, *, prefetch: int) -> AsyncIterator[Delivery]:
        """Yield deliveries from ``queue`` until the transport is closed or the iterator is dropped."""
        ...

    async def queue_depth(self, queue: str) -> int:
        """Messages waiting (ready, not in flight) in ``queue``."""
        ...
