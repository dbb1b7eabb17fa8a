"""error-end: retry a failed envelope later, or dead-letter it (SPEC section 7).

Run as ``python -m asya.crew error-end``. Consumes ``asya-error-end``, where
sidecars send ``{id, parent_id, route (current = failing step), headers,
payload: {error, details, original_payload}}`` and, for bytes they could not
parse at all, a wrapper with ``payload.original_body``. ``retrying.decide``
makes the call; this module only carries it out:

- retry: the original envelope goes back to the failing actor's queue with a
  broker-side delay (SQS ``DelaySeconds``, local visible-at, RabbitMQ delay
  queues), so waiting never occupies this consumer;
- dead letter: ``deadletter.dead_letter`` stores it and publishes to ``asya-dlq``.

The input is acknowledged only after that publish/store succeeded.
"""

from __future__ import annotations

import json
import logging
import time
from typing import cast

from asya import transports
from asya.contracts import headers as h
from asya.contracts import metrics as names
from asya.contracts.envelope import DLQ_NAME, ERROR_END, encode_envelope, queue_name, stamp_published
from asya.contracts.errors import DlqReason, PermanentError, TransportFeatureNotSupported
from asya.crew import deadletter, retrying
from asya.crew.consuming import Crew, serve
from asya.crew.settings import CrewSettings
from asya.engine import Verdict, failures
from asya.engine.reporting import RETRYING

log = logging.getLogger("asya.crew.error_end")


async def _ensure_queue(crew: Crew, queue: str) -> None:
    # the failing actor's queue normally exists; declaring it once per process is cheap insurance
    # (and on RabbitMQ a dead-lettered retry into a missing queue would vanish)
    if queue not in crew.known_queues:
        await crew.transport.ensure_queue(queue)
        crew.known_queues.add(queue)


async def schedule_retry(crew: Crew, retry: retrying.Retry) -> None:
    """Publish ``retry.envelope`` to the failing actor's queue, visible after ``retry.delay_s``."""
    queue = queue_name(retry.actor)
    retry.envelope["headers"][h.RETRY_NOT_BEFORE] = round(time.time() + retry.delay_s, 3)
    body = encode_envelope(stamp_published(retry.envelope))
    await _ensure_queue(crew, queue)
    await publish_later(crew.transport, queue, body, retry.delay_s)


async def publish_later(transport: transports.Transport, queue: str, body: bytes, delay_s: float) -> None:
    """Publish with a broker-side delay: the transport's own, or RabbitMQ's TTL delay queues."""
    if delay_s > 0 and not transport.supports_delay and transport.name == "rabbitmq":
        from asya.transports import _rabbitmq_delays, rabbitmq

        await _rabbitmq_delays.publish_delayed(
            cast(rabbitmq.RabbitMQTransport, transport), queue, body, delay_s=delay_s
        )
        return
    try:
        await transport.publish(queue, body, delay_s=delay_s)
    except TransportFeatureNotSupported:
        # a transport without delays still must not lose the retry: send it now
        log.warning("%s cannot delay messages; retrying at once on %s", transport.name, queue)
        await transport.publish(queue, body)


async def handle(crew: Crew, delivery: transports.Delivery) -> Verdict:
    """Decide and carry out retry or dead letter for one error message; ack once that is confirmed."""
    try:
        msg = json.loads(delivery.body)
        if not isinstance(msg, dict):
            raise ValueError(f"a JSON {type(msg).__name__}, not an object")
    except ValueError as exc:
        record = failures.unparseable(delivery.body, ERROR_END, f"error-end could not parse it: {exc}")
        await deadletter.dead_letter(crew, record, ERROR_END, DlqReason.UNPARSABLE, str(exc))
        return Verdict.ACK
    decision = retrying.decide(msg, crew.settings.retry)
    if isinstance(decision, retrying.Retry):
        try:
            await schedule_retry(crew, decision)
        except PermanentError as exc:
            # retrying it would fail the same way forever: it becomes a dead letter instead
            await deadletter.dead_letter(crew, msg, decision.actor, DlqReason.UNDELIVERABLE, str(exc))
            return Verdict.ACK
        crew.metrics.inc(names.CREW_RETRIES_SCHEDULED, actor=decision.actor)
        log.info(
            "retry %s at %s: attempt %d in %.3fs", msg.get("id"), decision.actor, decision.attempt, decision.delay_s
        )
        await crew.reporter.final(
            RETRYING, msg, actor=decision.actor, attempt=decision.attempt, delay_s=decision.delay_s
        )
    else:
        uri = await deadletter.dead_letter(crew, msg, decision.actor, decision.reason, decision.detail)
        log.info("dead-lettered %s from %s (%s): %s", msg.get("id"), decision.actor, decision.reason.value, uri)
    return Verdict.ACK


async def warm_delay_queues(crew: Crew) -> None:
    """On RabbitMQ, declare the delay queues the default policy will use, before the first retry needs one."""
    transport = crew.transport
    if transport.name == "rabbitmq" and not transport.supports_delay:
        from asya.transports import _rabbitmq_delays, rabbitmq

        delays = retrying.likely_delays(crew.settings.retry)[:200]  # a bounded warm-up; the rest on demand
        await _rabbitmq_delays.predeclare(cast(rabbitmq.RabbitMQTransport, transport), delays)


async def main(settings: CrewSettings) -> None:
    """Run error-end until SIGTERM."""
    await serve(handle, ERROR_END, settings, extra_queues=(DLQ_NAME,), warmup=warm_delay_queues)
