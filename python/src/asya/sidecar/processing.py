"""What happens to one envelope in a sidecar: the runtime-backed processor.

    delivery -> check envelope -> (claim check) -> call runtime (timeout bounds the handler)
             -> publish every output (confirmed) -> Verdict.ACK

``RuntimeProcessor`` is plugged into ``asya.engine.Engine``, which does the
acknowledging (``asya/engine/consuming.py``). Every branch here ends in a
defined place: the next actor's queue, happy-end, error-end, or back to the
broker (runtime gone; bounded by the delivery limit). A publish that fails
raises, the engine gives the input back and the broker redelivers it, so outputs
may be sent twice (at-least-once), never zero times. A cancelled job's envelope is
dropped (``engine.cancellation``); the job deadline bounds the call (``deadlines``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from asya import tracing
from asya.contracts import (
    HAPPY_END,
    EnvelopeError,
    ErrorCode,
    PermanentError,
    current_actor,
    decode_envelope,
    encode_envelope,
)
from asya.contracts.envelope import Envelope
from asya.engine import Failure, Verdict, failures
from asya.engine.cancellation import CancellationWatch
from asya.sidecar import deadlines, outcomes, publishing, routing
from asya.sidecar.observability import SidecarMetrics
from asya.sidecar.outcomes import Outcome, RuntimeGate
from asya.sidecar.runtime_client import Lease, RuntimeClient, RuntimeConnectionError
from asya.sidecar.settings import SidecarSettings
from asya.storage import claimcheck
from asya.transports import Delivery

if TYPE_CHECKING:
    from asya.engine import Engine

log = logging.getLogger("asya.sidecar")

_PUBLISH_WINDOW = 64
"""Outputs of one envelope awaiting broker confirms at once (fan-out of thousands stays bounded)."""


class RuntimeProcessor:
    """Processes deliveries for one actor by calling its runtime; see the module docstring for the flow."""

    def __init__(self, settings: SidecarSettings, runtime: RuntimeClient | None = None) -> None:
        self.settings = settings
        self.actor = settings.actor
        self.runtime = runtime or RuntimeClient(
            settings.socket_dir,
            pool_size=settings.engine.prefetch,
            plain_connections=settings.runtime_connections,
            refused_grace_s=settings.runtime_refused_grace_s,
        )
        self.gate = RuntimeGate(self.runtime, on_reopen=lambda: self.metrics.runtime_restarts.inc())
        self.abandoned_calls = 0
        self.engine: Engine | None = None
        self.cancellations = CancellationWatch(None)  # the engine's, from start(); this one knows nothing
        self.cancelled_ids = self.cancellations.ids.entries
        self._kind = settings.engine.transport.kind

    # --- engine hooks ---

    async def start(self, engine: Engine) -> None:
        self.engine = engine
        self.metrics = SidecarMetrics(engine.metrics)
        self.reporter = engine.reporter
        self.store = engine.store
        self.cancellations = engine.cancellations
        self.cancelled_ids = self.cancellations.ids.entries  # empty nearly always: tested inline, no call
        self.cancellations.start()
        self.dropped = engine.metrics.cancelled_dropped
        self.publisher = publishing.Publisher(
            engine.transport, self.metrics, self.store, self.settings.claim_check_bytes, self._kind
        )
        tracing.setup("sidecar", self.actor)
        log.info("actor %s: waiting for the runtime in %s", self.actor, self.settings.socket_dir)
        await self.runtime.wait_ready(self.settings.runtime_ready_timeout_s)
        await self.cancellations.loaded(2.0)  # a restarted sidecar must not run cancelled work first (<= 2 s)

    def health(self) -> tuple[bool, str]:
        if self.abandoned_calls >= self.settings.engine.prefetch:
            # Every slot has been lost to a hung handler at least once: restart the pod.
            return False, f"{self.abandoned_calls} runtime calls abandoned after timeouts; restart needed"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return (True, "ok") if self.runtime.is_ready() else (False, "runtime not ready")

    async def close(self) -> None:
        self.runtime.close()

    async def process(self, delivery: Delivery) -> Verdict:
        if tracing.ENABLED:
            return await tracing.within_hop(lambda: self._processed(delivery), lambda v: v.value)
        return await self._processed(delivery)

    async def _processed(self, delivery: Delivery) -> Verdict:
        sent = publishing.track()
        try:
            outcome, env = await self._process(delivery)
        except PermanentError as exc:
            # An output the broker will never take (e.g. over its size limit with no claim-check
            # store): redelivering would loop forever, so the input goes to error-end instead.
            outcome, env = await self._unpublishable(delivery, exc)
        self.metrics.processed.labels(outcome=outcome.value).inc()
        self.metrics.abandoned.set(self.abandoned_calls)
        if outcome is Outcome.REQUEUED:
            return Verdict.GIVE_BACK
        stage = outcomes.DROP_STAGE.get(outcome)
        if stage is not None:
            self._report_drop(env, stage, sent)
            return Verdict.ACK
        self.reporter.progress(env, self.actor, outcome.value, sent=len(sent), outputs=sent)
        return Verdict.ACK

    def _report_drop(self, env: Envelope, stage: str, sent: list[str]) -> None:
        job = self.cancellations.cancelled(env) or env.get("id")
        self.dropped.labels(stage=stage).inc()
        message = outcomes.drop_message(job, env.get("id"), self.actor, stage)
        log.info("%s", message)
        status = ErrorCode.CANCELLED.value
        self.reporter.progress(
            env, self.actor, status, stage=stage, job=job, message=message, sent=len(sent), outputs=sent
        )

    async def give_up(self, delivery: Delivery, failure: Failure) -> None:
        record = failures.record_for(delivery.body, self.actor, failure)
        record = routing.stamp_retry_budget(record, self.settings.retry_defaults)
        await self.publisher.send(self.settings.engine.error_end, record)
        self.reporter.progress(record, self.actor, failure.reason.value, sent=1, outputs=[str(record["id"])])

    # --- the data path ---

    async def _unpublishable(self, delivery: Delivery, exc: PermanentError) -> tuple[Outcome, Envelope]:
        message = (
            f"an output of actor {self.actor!r} cannot be published: {exc}. Set ASYA_STORAGE_URL so large "
            "payloads travel by claim check, or make the handler return less."
        )
        try:
            env = decode_envelope(delivery.body)
        except EnvelopeError as bad:
            # the body was the problem and even its error-end wrapper is too big: the engine takes it away
            raise PermanentError(
                f"the message is not a valid envelope ({bad}) and wrapped for error-end it is too big for the "
                f"broker ({exc})"
            ) from bad
        await self._fail(env, ErrorCode.PROCESSING_ERROR.value, {"message": message, "type": type(exc).__name__})
        return Outcome.ERROR, env

    async def _process(self, delivery: Delivery) -> tuple[Outcome, Envelope]:
        try:
            env = decode_envelope(delivery.body)
        except EnvelopeError as exc:
            log.warning("invalid envelope on %s: %s", delivery.queue, exc)
            wrapped = failures.unparseable(delivery.body, self.actor, str(exc), field=exc.field)
            wrapped["payload"]["details"]["actor"] = self.actor
            await self.publisher.send(self.settings.engine.error_end, wrapped)
            return Outcome.ERROR, wrapped
        self.metrics.queue_wait(env)
        if tracing.ENABLED:
            tracing.start_hop(env, self._kind, delivery.queue)
        if self.cancelled_ids and self.cancellations.cancelled(env):
            return Outcome.CANCELLED, env  # acked: the runtime never sees it, nothing goes on
        if current_actor(env) != self.actor:
            await self._fail(env, ErrorCode.MSG_PARSING_ERROR.value, routing.route_mismatch_details(env, self.actor))
            return Outcome.ERROR, env
        if routing.hops(env) >= self.settings.max_hops:
            details = routing.hop_budget_details(env, self.actor, self.settings.max_hops)
            log.warning("envelope %s spent its hop budget at %s: error-end", env["id"], self.actor)
            await self._fail(env, ErrorCode.PROCESSING_ERROR.value, details)
            return Outcome.ERROR, env
        try:
            deadline = deadlines.of(env)
        except EnvelopeError as exc:
            await self._fail(env, ErrorCode.MSG_PARSING_ERROR.value, deadlines.bad_header_details(exc))
            return Outcome.ERROR, env
        if deadline is not None and time.time() >= deadline:
            await self._deadline_exceeded(env, deadline, called=False)
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
        return await self._run(env, delivery, body, deadline), env

    async def _deadline_exceeded(self, env: Envelope, deadline: float, *, called: bool) -> None:
        details = deadlines.exceeded_details(
            env, self.actor, deadline, time.time(), called=called, timeout_s=self.settings.processing_timeout_s
        )
        log.warning("envelope %s: %s", env["id"], details["message"])
        self.metrics.runtime_errors.labels(code=ErrorCode.DEADLINE_EXCEEDED.value).inc()
        await self._fail(env, ErrorCode.DEADLINE_EXCEEDED.value, details)

    async def _run(self, env: Envelope, delivery: Delivery, body: bytes, job_deadline: float | None) -> Outcome:
        await self.gate.wait()
        try:
            return await self._call(env, body, job_deadline)
        except deadlines.DeadlineReached as reached:
            if reached.called:
                self.abandoned_calls += 1
            assert job_deadline is not None
            await self._deadline_exceeded(env, job_deadline, called=reached.called)
            return Outcome.ERROR
        except deadlines.ConnectTimeout:
            self.metrics.runtime_errors.labels(code=ErrorCode.TIMEOUT_ERROR.value).inc()
            message = (
                f"the runtime of actor {self.actor!r} took no connection within "
                f"{self.settings.processing_timeout_s:g}s (its listen backlog stayed full: busy or hung)"
            )
            await self._fail(env, ErrorCode.TIMEOUT_ERROR.value, {"message": message, "type": "TimeoutError"})
            return Outcome.ERROR
        except deadlines.HandlerTimeout:
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

    async def _call(self, env: Envelope, body: bytes, job_deadline: float | None) -> Outcome:
        """Stream the runtime's items to their queues; the first item waits for a second to know if it fans out.

        The processing timeout bounds connecting and the wait for the runtime's items (the handler), not
        the wait for a free call slot (a 0.1.x runtime takes one call at a time) nor publishing an output,
        which the transport bounds: its failure is broker trouble, not a slow handler.
        """
        lease = await self.runtime.reserve()  # a 0.1.x runtime takes one call at a time: queue here, off the clock
        try:
            return await self._call_leased(env, body, lease, job_deadline)
        finally:
            lease.release()

    async def _call_leased(self, env: Envelope, body: bytes, lease: Lease, job_deadline: float | None) -> Outcome:
        started = time.perf_counter()
        call_span = tracing.start_handler(self.actor) if tracing.ENABLED else None
        limit = self.settings.processing_timeout_s
        by_job = job_deadline is not None and job_deadline - time.time() < limit
        if by_job:
            assert job_deadline is not None
            limit = max(job_deadline - time.time(), 0.0)  # past already (a long wait for a slot): fires at once
        deadline = asyncio.get_running_loop().time() + limit
        # One timeout for connecting and for every wait on the runtime (one timer per call, not
        # one per item: this is the hot path). It is paused while an output is published, which
        # the transport bounds on its own.
        clock = asyncio.timeout_at(deadline)
        window: publishing.OrderedSends | None = None  # only a fan-out needs one
        held: dict[str, Any] | None = None
        index = 0
        fan_out = False
        error: dict[str, Any] | None = None
        emitted = False
        conn = None
        items: AsyncGenerator[dict[str, Any], None] | None = None
        exchanged = False  # once started, the exchange gives the connection back itself
        dropped = False  # the job was cancelled while the handler ran: publish nothing more

        async def emit(item: dict[str, Any], i: int, many: bool) -> None:
            nonlocal window, dropped
            if dropped or (self.cancelled_ids and self.cancellations.cancelled(env)):
                dropped = True
                return
            out = routing.output_envelope(env, item, i, many)
            dest = self._destination(out)
            if not many:  # the common 1:1 hop: no task, just wait for the confirm
                await self.publisher.send(dest, out)
                return
            if window is None:
                window = publishing.OrderedSends(self.publisher, _PUBLISH_WINDOW)
            clock.reschedule(None)
            try:
                await window.put(dest, out)  # children reach the queue in order, confirms pipelined
            finally:
                clock.reschedule(deadline)  # already past: fires at the next wait on the runtime

        try:
            async with clock:
                conn = await self.runtime.checkout(lease)
                items = cast(AsyncGenerator[dict[str, Any], None], self.runtime.exchange(conn, body))
                exchanged = True
                async for item in items:
                    if "error" in item:
                        if held is not None:  # a partial fan-out: the one item before the failure is a child too
                            fan_out, emitted = True, True
                            await emit(held, 0, True)
                            held = None
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
            if window is not None:
                await window.drain()
        except TimeoutError:
            if not clock.expired():
                raise  # not ours: a transport's own bound, broker trouble
            if by_job:
                raise deadlines.DeadlineReached(called=conn is not None) from None
            raise (deadlines.HandlerTimeout if conn is not None else deadlines.ConnectTimeout) from None
        except EnvelopeError as exc:  # the handler produced an envelope that breaks the contract
            error = {
                "error": ErrorCode.PROCESSING_ERROR.value,
                "details": {
                    "message": f"actor {self.actor!r} returned an invalid output: {exc}",
                    "type": "EnvelopeError",
                },
            }
        finally:
            if window is not None:
                window.cancel()
            if items is not None:
                await items.aclose()  # closes an unfinished socket
            if conn is not None and not exchanged:
                # Only then: a started exchange already pooled the connection, and another call may
                # have checked it out since; finishing it again here would close that call's socket.
                self.runtime.finish(conn)
            self.metrics.processing_seconds.observe(time.perf_counter() - started)
            if call_span is not None:
                call_span.end()

        if dropped or (self.cancelled_ids and self.cancellations.cancelled(env)):
            return Outcome.CANCELLED_AFTER_CALL  # its error or its happy-end copy would outlive the cancel too
        if error is not None:
            code = str(error.get("error") or ErrorCode.PROCESSING_ERROR.value)
            self.metrics.runtime_errors.labels(code=code).inc()
            await self._fail(env, code, dict(error.get("details") or {}))
            return Outcome.ERROR
        if not emitted:
            # None or [] from the handler ends the pipeline here: the input is the result.
            await self.publisher.send(self.settings.engine.happy_end, env)
            return Outcome.ENDED_EARLY
        return Outcome.SUCCESS

    def _destination(self, env: Envelope) -> str:
        dest = routing.destination(env)
        return self.settings.engine.happy_end if dest == HAPPY_END else dest

    async def _fail(self, env: Envelope, code: str, details: dict[str, Any]) -> None:
        details = {**details, "actor": self.actor}  # where it failed: the dead letter is filed under this actor
        record = routing.error_envelope(env, code, details, self.settings.retry_defaults)
        await self.publisher.send(self.settings.engine.error_end, record)

    async def _runtime_lost(self, env: Envelope, delivery: Delivery, exc: Exception) -> Outcome:
        # The transport counts deliveries (broker counter, lease count or its own header on requeue).
        limit = self.settings.engine.max_deliveries
        if delivery.attempt < limit:
            log.warning("runtime lost during %s (delivery %d): %s; giving it back", env["id"], delivery.attempt, exc)
            return Outcome.REQUEUED
        message = (
            f"the runtime process died or dropped the connection while handling this envelope on "
            f"{delivery.attempt} deliveries (limit ASYA_MAX_DELIVERIES={limit}); the handler may be crashing its "
            f"process (out of memory, segfault, os._exit). Last error: {exc}"
        )
        await self._fail(env, ErrorCode.CONNECTION_ERROR.value, {"message": message, "type": type(exc).__name__})
        return Outcome.ERROR


__all__ = ["Outcome", "RuntimeGate", "RuntimeProcessor"]
