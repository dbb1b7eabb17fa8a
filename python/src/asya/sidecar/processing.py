"""What happens to one envelope: the sidecar's data path, top to bottom.

    receive -> check envelope -> call runtime (with timeout) -> publish outputs
            -> (every publish confirmed) -> ACK

``Processor.process`` is the only place an input message is acknowledged or
given back, so this file answers "where does Asya ack?". Every branch ends in
a defined place: the next actor's queue, happy-end, error-end, or the same
queue again (runtime gone; bounded by ``max_deliveries``). A publish that fails
leaves the input unacknowledged, so the broker redelivers it: outputs may then
be sent twice (at-least-once), never zero times.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import time
from typing import Any

from asya.contracts import (
    ERROR_END,
    HAPPY_END,
    EnvelopeError,
    ErrorCode,
    PermanentError,
    current_actor,
    decode_envelope,
    encode_envelope,
    queue_name,
)
from asya.contracts.envelope import Envelope
from asya.sidecar import routing
from asya.sidecar.observability import Metrics
from asya.sidecar.reporting import ProgressReporter
from asya.sidecar.runtime_client import RuntimeClient, RuntimeConnectionError
from asya.sidecar.settings import SidecarSettings
from asya.storage import claimcheck
from asya.transports import ATTEMPT_HEADER, Delivery, Transport

log = logging.getLogger("asya.sidecar")

_PUBLISH_WINDOW = 64
"""Outputs of one envelope awaiting broker confirms at once (fan-out of thousands stays bounded)."""


class Outcome(str, enum.Enum):
    """How one delivery ended; the ``outcome`` label of the processed-messages metric."""

    SUCCESS = "success"
    """Outputs published to the next queue(s) or happy-end, input acked."""
    ENDED_EARLY = "ended_early"
    """The handler returned nothing: the input went to happy-end, acked."""
    ERROR = "error"
    """The envelope went to error-end (bad input, handler error, timeout), acked."""
    REQUEUED = "requeued"
    """The runtime was unreachable: the input went back to this actor's queue."""
    RETURNED = "returned"
    """Nothing could be published (broker trouble): left unacked for redelivery."""


class RuntimeGate:
    """Open while the runtime answers; closed from a connection failure until it is back."""

    def __init__(self, runtime: RuntimeClient) -> None:
        self._runtime = runtime
        self._open = asyncio.Event()
        self._open.set()
        self._watcher: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        await self._open.wait()

    def close(self) -> None:
        if self._open.is_set():
            self._open.clear()
            self._watcher = asyncio.create_task(self._reopen())

    async def _reopen(self) -> None:
        self._runtime.reset()
        while True:
            try:
                await self._runtime.wait_ready(timeout_s=3600)
                break
            except TimeoutError:
                log.error("runtime still unreachable after an hour; holding envelopes")
        log.info("runtime reachable again")
        self._open.set()


_sent: contextvars.ContextVar[list[int]] = contextvars.ContextVar("asya_sent")
"""Envelopes published on behalf of the delivery being processed (per task; shared with its publish tasks)."""


class Publisher:
    """Sends envelopes to actor queues and counts them for the delivery being processed.

    With a claim-check store, an envelope over the threshold leaves its payload
    in the store and travels as a reference (see ``claimcheck``).
    """

    def __init__(
        self, transport: Transport, metrics: Metrics, store: claimcheck.BlobStore | None = None, threshold: int = 0
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
        counter = _sent.get(None)
        if counter is not None:
            counter[0] += 1


class Processor:
    """Processes deliveries for one actor; see the module docstring for the flow."""

    def __init__(
        self,
        settings: SidecarSettings,
        transport: Transport,
        runtime: RuntimeClient,
        metrics: Metrics,
        reporter: ProgressReporter,
        store: claimcheck.BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.actor = settings.actor
        self.transport = transport
        self.runtime = runtime
        self.metrics = metrics
        self.reporter = reporter
        self.publisher = Publisher(transport, metrics, store, settings.claim_check_bytes)
        self.gate = RuntimeGate(runtime)
        self.abandoned_calls = 0

    async def process(self, delivery: Delivery) -> Outcome:
        started = time.perf_counter()
        sent = [0]
        _sent.set(sent)
        try:
            try:
                outcome, env = await self._process(delivery)
            except PermanentError as exc:
                # An output the broker will never take (e.g. over its size limit with no claim-check
                # store): redelivering would loop forever, so the input goes to error-end instead.
                outcome, env = await self._unpublishable(delivery, exc)
        except Exception as exc:  # broker trouble while publishing: let the broker redeliver
            log.error("could not finish envelope from %s (%s); leaving it for redelivery", delivery.queue, exc)
            await _settle_safely(delivery.nack(requeue=True))
            outcome = Outcome.RETURNED
        else:
            await delivery.ack()
            # The gateway (or `asya dev run`) tracks open work as: +sent -1 per finished delivery.
            self.reporter.report(env, self.actor, outcome.value, sent=sent[0])
        self.metrics.processed.labels(outcome=outcome.value).inc()
        self.metrics.hop_seconds.observe(time.perf_counter() - started)
        return outcome

    async def _unpublishable(self, delivery: Delivery, exc: PermanentError) -> tuple[Outcome, Envelope]:
        env = decode_envelope(delivery.body)
        message = (
            f"an output of actor {self.actor!r} cannot be published: {exc}. Set ASYA_STORAGE_URL so large "
            "payloads travel by claim check, or make the handler return less."
        )
        await self._fail(env, ErrorCode.PROCESSING_ERROR.value, {"message": message, "type": type(exc).__name__})
        return Outcome.ERROR, env

    async def _process(self, delivery: Delivery) -> tuple[Outcome, Envelope]:
        try:
            env = decode_envelope(delivery.body)
        except EnvelopeError as exc:
            log.warning("invalid envelope on %s: %s", delivery.queue, exc)
            wrapped = routing.unparseable_envelope(delivery.body, self.actor, exc.field, exc.reason)
            await self.publisher.send(ERROR_END, wrapped)
            return Outcome.ERROR, wrapped
        if current_actor(env) != self.actor:
            await self._fail(env, ErrorCode.MSG_PARSING_ERROR.value, routing.route_mismatch_details(env, self.actor))
            return Outcome.ERROR, env
        body = delivery.body
        if claimcheck.reference(env.get("payload")) is not None:
            if self.store is None:
                details = {
                    "message": "payload is a claim-check reference but this sidecar has no ASYA_STORAGE_URL",
                    "type": "ClaimCheckError",
                }
                await self._fail(env, ErrorCode.PROCESSING_ERROR.value, details)
                return Outcome.ERROR, env
            try:
                env = await claimcheck.resolve(env, self.store)
            except claimcheck.ClaimCheckError as exc:
                await self._fail(
                    env, ErrorCode.PROCESSING_ERROR.value, {"message": str(exc), "type": "ClaimCheckError"}
                )
                return Outcome.ERROR, env
            body = encode_envelope(env)  # the runtime gets the whole payload; handlers never see references
        return await self._run(env, delivery, body), env

    async def _run(self, env: Envelope, delivery: Delivery, body: bytes) -> Outcome:
        await self.gate.wait()
        try:
            async with asyncio.timeout(self.settings.processing_timeout_s):
                return await self._call(env, body)
        except TimeoutError:
            self.abandoned_calls += 1
            self.metrics.runtime_errors.labels(code=ErrorCode.TIMEOUT_ERROR.value).inc()
            message = (
                f"handler did not finish within {self.settings.processing_timeout_s:g}s (actor {self.actor!r}); "
                "the call was abandoned. Raise the actor's processing timeout or make the handler faster."
            )
            await self._fail(env, ErrorCode.TIMEOUT_ERROR.value, {"message": message, "type": "TimeoutError"})
            return Outcome.ERROR
        except RuntimeConnectionError as exc:
            self.metrics.runtime_errors.labels(code=ErrorCode.CONNECTION_ERROR.value).inc()
            self.gate.close()
            return await self._runtime_lost(env, delivery, exc)

    async def _call(self, env: Envelope, body: bytes) -> Outcome:
        """Stream the runtime's items to their queues; the first item waits for a second to know if it fans out."""
        started = time.perf_counter()
        window: set[asyncio.Task[None]] = set()
        held: dict[str, Any] | None = None
        index = 0
        fan_out = False
        error: dict[str, Any] | None = None
        emitted = False

        async def emit(item: dict[str, Any], i: int, many: bool) -> None:
            out = routing.output_envelope(env, item, i, many)
            if not many:  # the common 1:1 hop: no task, just wait for the confirm
                await self.publisher.send(routing.destination(out), out)
                return
            while len(window) >= _PUBLISH_WINDOW:
                done, _ = await asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    window.discard(task)
                    task.result()
            window.add(asyncio.create_task(self.publisher.send(routing.destination(out), out)))

        try:
            async for item in self.runtime.call(body):
                if "error" in item:
                    error = error or item
                    continue
                if held is None and not fan_out:
                    held = item
                    continue
                if held is not None:
                    fan_out = True
                    await emit(held, 0, True)
                    held = None
                    emitted = True
                index += 1
                await emit(item, index, True)
                emitted = True
            if held is not None:
                await emit(held, 0, False)
                emitted = True
            if window:
                await asyncio.gather(*window)
        except EnvelopeError as exc:  # the handler produced an envelope that breaks the contract
            error = {
                "error": ErrorCode.PROCESSING_ERROR.value,
                "details": {"message": str(exc), "type": "EnvelopeError"},
            }
        finally:
            for task in window:
                task.cancel()
            self.metrics.processing_seconds.observe(time.perf_counter() - started)

        if error is not None:
            code = str(error.get("error") or ErrorCode.PROCESSING_ERROR.value)
            self.metrics.runtime_errors.labels(code=code).inc()
            await self._fail(env, code, dict(error.get("details") or {}))
            return Outcome.ERROR
        if not emitted:
            # None or [] from the handler ends the pipeline here: the input is the result.
            await self.publisher.send(HAPPY_END, env)
            return Outcome.ENDED_EARLY
        return Outcome.SUCCESS

    async def _fail(self, env: Envelope, code: str, details: dict[str, Any]) -> None:
        await self.publisher.send(ERROR_END, routing.error_envelope(env, code, details, self.settings.retry_defaults))

    async def _runtime_lost(self, env: Envelope, delivery: Delivery, exc: Exception) -> Outcome:
        # Our own requeues carry the count in a transport header; broker redeliveries in delivery.attempt.
        attempt = max(delivery.attempt, _int(delivery.headers.get(ATTEMPT_HEADER), 1))
        if attempt < self.settings.max_deliveries:
            log.warning("runtime lost during %s (delivery %d): %s; requeueing", env["id"], attempt, exc)
            await self.transport.publish(delivery.queue, delivery.body, headers={ATTEMPT_HEADER: attempt + 1})
            counter = _sent.get(None)
            if counter is not None:
                counter[0] += 1
            return Outcome.REQUEUED
        message = (
            f"the runtime process died or dropped the connection while handling this envelope on "
            f"{attempt} deliveries (limit {self.settings.max_deliveries}); the handler may be crashing its "
            f"process (out of memory, segfault, os._exit). Last error: {exc}"
        )
        await self._fail(env, ErrorCode.CONNECTION_ERROR.value, {"message": message, "type": type(exc).__name__})
        return Outcome.ERROR


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


async def _settle_safely(coro: Any) -> None:
    try:
        await coro
    except Exception as exc:  # the channel is gone; the broker will redeliver on its own
        log.warning("could not give the message back (%s); the broker redelivers it", exc)


__all__ = ["HAPPY_END", "Outcome", "Processor", "Publisher", "RuntimeGate"]
