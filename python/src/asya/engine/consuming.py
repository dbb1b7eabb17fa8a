"""The consumer engine: one queue, bounded concurrency, every delivery settled here.

    transport.consume -> delivery limit? -> processor.process -> verdict -> ACK / give back

Sidecars and the crew's end actors are processors plugged into ``Engine``
(like handlers in FastStream): a processor decides where an envelope goes and
publishes it (awaiting the broker's confirms), then returns a ``Verdict``.
This module is the only place a delivery is acknowledged or given back:

- ``Verdict.ACK``: every output the processor published is confirmed, so the
  input is acknowledged;
- ``Verdict.GIVE_BACK``: leave it to the broker to deliver again (runtime gone,
  store down); the delivery count grows each time;
- an ``InfrastructureError`` / ``ConnectionError`` / ``TimeoutError`` from the
  processor is broker or store trouble: give it back;
- any other exception is a bug or a bad message, and retrying cannot help: the
  processor's ``give_up`` sends it to its defined place (error-end for sidecars,
  the dead-letter path for end actors) and the input is acknowledged;
- a delivery seen more than ``max_deliveries`` times, whatever the cause, goes
  the same way with reason ``delivery_limit`` before the processor sees it.

So every delivery ends in a defined place within a bounded number of tries.
On stop (SIGTERM) the engine stops taking work, lets in-flight deliveries
finish for ``graceful_shutdown_s``, gives back the rest and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import time
from collections.abc import AsyncIterator
from typing import Protocol

from asya import storage, transports
from asya.contracts import DlqReason, ErrorCode, InfrastructureError, PermanentError, queue_name
from asya.engine import failures, serving
from asya.engine.cancellation import CancellationWatch
from asya.engine.metrics import Metrics
from asya.engine.reporting import Reporter
from asya.engine.settings import EngineSettings
from asya.transports import Delivery, Transport

log = logging.getLogger("asya.engine")

_TROUBLE = (InfrastructureError, ConnectionError, TimeoutError)
"""Exceptions that mean "the broker or store failed, not the message": give the delivery back."""
_TROUBLE_PAUSE_S = 0.5
"""Pause before giving back after trouble, so an outage does not spin through deliveries."""


class Verdict(str, enum.Enum):
    """What the engine does with a delivery once its processor returns."""

    ACK = "ack"
    """Done: every output is confirmed by the broker; remove the input."""
    GIVE_BACK = "give_back"
    """Not done: the broker delivers it again later (counted towards the delivery limit)."""


class Processor(Protocol):
    """One actor's logic; ``Engine`` feeds it deliveries."""

    async def start(self, engine: Engine) -> None:
        """Prepare before the first delivery (wait for the runtime, warm up); may use ``engine``'s resources."""
        ...

    async def process(self, delivery: Delivery) -> Verdict:
        """Handle one delivery: publish what it becomes (confirmed) and say whether to ack it."""
        ...

    async def give_up(self, delivery: Delivery, failure: failures.Failure) -> None:
        """Send a delivery the engine takes away (limit reached, unexpected error) to its defined place."""
        ...

    def health(self) -> tuple[bool, str]: ...

    def readiness(self) -> tuple[bool, str]: ...

    async def close(self) -> None: ...


class Engine:
    """Consumes ``asya-<actor>`` for one processor; ``await run()`` until ``stop()``."""

    def __init__(
        self,
        settings: EngineSettings,
        processor: Processor,
        *,
        transport: Transport | None = None,
        extra_queues: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.queue = queue_name(settings.actor)
        self.extra_queues = extra_queues
        self.transport = transport or transports.create(settings.transport)
        self.store: storage.ObjectStore | None = (
            storage.create_store(settings.storage_url, settings.s3) if settings.storage_url else None
        )
        self.metrics = Metrics(settings.actor)
        self.reporter = Reporter(
            settings.gateway_url,
            token=settings.gateway_token or None,
            metrics=self.metrics,
            retry_for_s=settings.report_retry_s,
        )
        self.cancellations = CancellationWatch(
            settings.gateway_url,
            token=settings.gateway_token,
            metrics=self.metrics,
            interval_s=settings.cancel_poll_s,
            ttl_s=settings.cancel_ttl_s,
        )
        """Cancelled jobs known from the gateway; started by the processors that drop them (the sidecar)."""
        self.stopping = asyncio.Event()
        """Set when shutdown began: processors cut their waits short."""
        self.inflight: dict[asyncio.Task[None], Delivery] = {}
        self._consuming = False

    # --- probes ---

    def healthy(self) -> tuple[bool, str]:
        return self.processor.health()

    def ready(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "shutting down"
        if not self._consuming:
            return False, "not consuming yet"
        return self.processor.readiness()

    # --- lifecycle ---

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        s = self.settings
        http = None
        await self.transport.connect()
        try:
            if s.http_port:
                http = await serving.start_http(s.http_host, s.http_port, self.metrics, self.healthy, self.ready)
            for queue in (self.queue, *self.extra_queues):
                await self.transport.ensure_queue(queue)
            await self.processor.start(self)
            self.reporter.start()
            keeper = asyncio.create_task(self._keep_leases())
            consumer = asyncio.create_task(self._consume())
            log.info(
                "actor %s: consuming %s (broker name %s) via %s (prefetch %d)",
                s.actor,
                self.queue,
                s.transport.broker_queue(self.queue),
                s.transport.kind,
                s.prefetch,
            )
            stop_wait = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({consumer, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            self.stopping.set()
            stop_wait.cancel()
            failure = consumer.exception() if consumer.done() and not consumer.cancelled() else None
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await consumer
            await self._drain()
            keeper.cancel()
            if failure is not None:
                raise failure  # the transport failed for good: surface it
        finally:
            await self.cancellations.stop()
            await self.reporter.stop()
            if http is not None:
                await http.cleanup()
            await self.processor.close()
            if self.store is not None:
                await self.store.close()
            await self.transport.close()
            log.info("actor %s: stopped", s.actor)

    async def _consume(self) -> None:
        slots = asyncio.Semaphore(self.settings.prefetch)
        stream: AsyncIterator[Delivery] = self.transport.consume(self.queue, prefetch=self.settings.prefetch)
        self._consuming = True
        try:
            async for delivery in stream:
                await slots.acquire()
                if self.stopping.is_set():
                    slots.release()
                    await self._give_back(delivery, "shutting down")
                    break
                self.metrics.received.inc()
                self.metrics.inflight.inc()
                task = asyncio.create_task(self._handle(delivery))
                self.inflight[task] = delivery
                task.add_done_callback(lambda t: self._done(t, slots))
        finally:
            self._consuming = False
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _done(self, task: asyncio.Task[None], slots: asyncio.Semaphore) -> None:
        self.inflight.pop(task, None)
        self.metrics.inflight.dec()
        slots.release()

    # --- one delivery: the only place it is settled ---

    async def _handle(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        outcome = ""  # the engine's own outcomes; a processor counts the ones it decides
        try:
            if delivery.attempt > self.settings.max_deliveries:
                outcome = await self._take_away(delivery, self._limit_failure(delivery))
                return
            try:
                verdict = await self.processor.process(delivery)
            except _TROUBLE as exc:
                log.warning("%s: %s; giving it back", _which(delivery), _trouble_text(exc))
                outcome = "given_back"
                await self._pause()
                await self._give_back(delivery, "broker or store trouble")
                return
            except PermanentError as exc:
                # the processor could not send it anywhere the broker accepts (e.g. over a size limit)
                log.error("%s: undeliverable: %s", _which(delivery), exc)
                outcome = await self._take_away(delivery, _failure(DlqReason.UNDELIVERABLE, self.settings.actor, exc))
                return
            except Exception as exc:
                log.exception("%s: unexpected %s while processing", _which(delivery), type(exc).__name__)
                outcome = await self._take_away(delivery, _failure(DlqReason.PROCESSOR_ERROR, self.settings.actor, exc))
                return
            if verdict is Verdict.ACK:
                await self._ack(delivery)
            else:
                await self._give_back(delivery, "processor asked")
        finally:
            self.metrics.hop_seconds.observe(time.perf_counter() - started)
            if not delivery.settled and self.stopping.is_set():
                await self._give_back(delivery, "shutting down")
            if outcome:
                self.metrics.processed.labels(outcome=outcome).inc()

    async def _take_away(self, delivery: Delivery, failure: failures.Failure) -> str:
        """Hand the delivery to the processor's defined place for failures; ack once that is confirmed."""
        try:
            await self.processor.give_up(delivery, failure)
        except _TROUBLE as exc:
            log.warning("%s: could not send it away (%s); giving it back", _which(delivery), _trouble_text(exc))
            await self._pause()
            await self._give_back(delivery, "broker trouble while failing")
            return "given_back"
        except Exception:
            log.exception("%s: the failure path failed too; publishing a notice to %s", _which(delivery), self._dlq)
            try:
                await self.transport.publish(self._dlq, failures.notice(self._record(delivery, failure), None))
            except Exception as exc:
                log.error("%s: not even %s took it (%s); giving it back", _which(delivery), self._dlq, exc)
                await self._give_back(delivery, "dead-letter queue unavailable")
                return "given_back"
        await self._ack(delivery)
        return failure.reason.value

    @property
    def _dlq(self) -> str:
        return self.settings.dlq

    def _record(self, delivery: Delivery, failure: failures.Failure) -> dict[str, object]:
        record = failures.record_for(delivery.body, self.settings.actor, failure)
        record["dlq"] = {"reason": failure.reason.value, "detail": failure.message, "actor": self.settings.actor}
        return record

    def _limit_failure(self, delivery: Delivery) -> failures.Failure:
        limit = self.settings.max_deliveries
        return failures.Failure(
            DlqReason.DELIVERY_LIMIT,
            ErrorCode.PROCESSING_ERROR.value,
            f"delivered {delivery.attempt} times to actor {self.settings.actor!r} (limit ASYA_MAX_DELIVERIES="
            f"{limit}) without finishing: the handler or its process keeps failing before an answer, or the "
            "broker keeps losing acknowledgements. Look at this actor's logs around these deliveries.",
            "DeliveryLimitExceeded",
        )

    async def _ack(self, delivery: Delivery) -> None:
        try:
            await delivery.ack()
        except Exception as exc:  # the broker will deliver it again; processing is idempotent by id
            log.warning("%s: ack failed (%s); the broker will deliver it again", _which(delivery), exc)

    async def _give_back(self, delivery: Delivery, why: str) -> None:
        if delivery.settled:
            return
        try:
            await delivery.nack(requeue=True)
        except Exception as exc:  # the channel is gone; the broker redelivers on its own
            log.warning("%s: could not give it back (%s: %s); the broker redelivers it", _which(delivery), why, exc)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), _TROUBLE_PAUSE_S)

    async def _drain(self) -> None:
        if not self.inflight:
            return
        grace = self.settings.graceful_shutdown_s
        log.info("draining %d in-flight delivery(ies) for up to %.0fs", len(self.inflight), grace)
        _, pending = await asyncio.wait(set(self.inflight), timeout=grace)
        for task in pending:
            delivery = self.inflight.get(task)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if delivery is not None:
                await self._give_back(delivery, "still running at shutdown")
        if pending:
            log.warning("gave back %d delivery(ies) still running at shutdown", len(pending))

    async def _keep_leases(self) -> None:
        lease = self.settings.transport.visibility_timeout_s
        while True:
            await asyncio.sleep(lease / 3)
            for delivery in list(self.inflight.values()):
                if not delivery.settled:
                    try:
                        await delivery.extend(lease)
                    except Exception as exc:
                        log.warning("%s: could not extend its lease: %s", _which(delivery), exc)


def _which(delivery: Delivery) -> str:
    mid = getattr(delivery, "message_id", "") or "?"
    return f"message {mid} on {delivery.queue} (delivery {delivery.attempt})"


def _trouble_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_FAILURE_TEXT = {
    DlqReason.PROCESSOR_ERROR: (
        "actor {actor!r} failed on this message with {kind}: {exc}. This is a fault in Asya or in what the "
        "handler returned, not in the broker; the message was taken out of the queue so it cannot loop."
    ),
    DlqReason.UNDELIVERABLE: (
        "actor {actor!r} could not send this message on: {exc}. It was taken out of the queue so it cannot loop; "
        "with ASYA_STORAGE_URL set, large payloads travel by claim check instead."
    ),
}


def _failure(reason: DlqReason, actor: str, exc: Exception) -> failures.Failure:
    """Why the engine took a delivery away from its processor, in words a person can act on."""
    message = _FAILURE_TEXT[reason].format(actor=actor, kind=type(exc).__name__, exc=exc)
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return failures.Failure(reason, ErrorCode.PROCESSING_ERROR.value, message, kind)


async def run_until_signalled(engine: Engine) -> None:
    """Run ``engine`` until SIGTERM or SIGINT (the entry points of the sidecar and crew processes)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, engine.stop)
            installed.append(sig)
    try:
        await engine.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
