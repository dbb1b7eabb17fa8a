"""The sidecar process: consume the actor's queue with bounded concurrency.

``Sidecar.run`` connects the transport, waits for the runtime, then hands each
delivery to ``Processor.process`` (see processing.py for the per-envelope flow)
while at most ``prefetch`` envelopes are in flight. On stop (SIGTERM) it stops
taking work, lets in-flight envelopes finish for ``graceful_shutdown_s``, gives
back what is still running, and closes.

Leases: brokers with visibility timeouts (local, SQS) would hand a slow
envelope to a second consumer; one background task extends the lease of every
in-flight delivery well before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asya import storage
from asya.contracts import queue_name
from asya.sidecar.observability import Metrics, start_http
from asya.sidecar.processing import Processor
from asya.sidecar.reporting import ProgressReporter
from asya.sidecar.runtime_client import RuntimeClient
from asya.sidecar.settings import SidecarSettings
from asya.transports import Delivery, Transport, create

log = logging.getLogger("asya.sidecar")


def claim_check_store(settings: SidecarSettings) -> storage.ObjectStore | None:
    """The object store for large payloads, when ``ASYA_STORAGE_URL`` is set."""
    if not settings.storage_url:
        return None
    return storage.create_store(settings.storage_url, storage.S3Settings.from_env())


class Sidecar:
    """One actor's sidecar; build with settings, then ``await run()`` until ``stop()``."""

    def __init__(self, settings: SidecarSettings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.queue = queue_name(settings.actor)
        self.transport = transport or create(settings.transport)
        self.runtime = RuntimeClient(settings.socket_dir, pool_size=settings.prefetch)
        self.metrics = Metrics(settings.actor)
        self.reporter = ProgressReporter(settings.gateway_url)
        self.store = claim_check_store(settings)
        self.processor = Processor(settings, self.transport, self.runtime, self.metrics, self.reporter, self.store)
        self.inflight: dict[asyncio.Task[object], Delivery] = {}
        self._stopping = asyncio.Event()
        self._consuming = False

    # --- probes ---

    def healthy(self) -> tuple[bool, str]:
        stuck = self.processor.abandoned_calls
        if stuck >= self.settings.prefetch:
            # Every slot has been lost to a hung handler at least once: restart the pod.
            return False, f"{stuck} runtime calls abandoned after timeouts; restart needed"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self._stopping.is_set():
            return False, "shutting down"
        if not self._consuming:
            return False, "not consuming yet"
        if not self.runtime.is_ready():
            return False, "runtime not ready"
        return True, "ok"

    # --- lifecycle ---

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        s = self.settings
        await self.transport.connect()
        http = None
        try:
            if s.http_port:
                http = await start_http(s.http_host, s.http_port, self.metrics, self.healthy, self.ready)
            await self.transport.ensure_queue(self.queue)
            log.info("actor %s: waiting for the runtime in %s", s.actor, s.socket_dir)
            await self.runtime.wait_ready(s.runtime_ready_timeout_s)
            self.reporter.start()
            keeper = asyncio.create_task(self._keep_leases())
            consumer = asyncio.create_task(self._consume())
            log.info(
                "actor %s: consuming %s via %s (prefetch %d)",
                s.actor,
                self.queue,
                s.transport.kind,
                s.prefetch,
            )
            stop_wait = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({consumer, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done() and not stop_wait.done():
                stop_wait.cancel()
                consumer.result()  # the transport failed for good: surface it
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await self._drain()
            keeper.cancel()
        finally:
            await self.reporter.stop()
            if http is not None:
                await http.cleanup()
            self.runtime.close()
            if self.store is not None:
                await self.store.close()
            await self.transport.close()
            log.info("actor %s: stopped", s.actor)

    async def _consume(self) -> None:
        slots = asyncio.Semaphore(self.settings.prefetch)
        self._consuming = True
        try:
            async for delivery in self.transport.consume(self.queue, prefetch=self.settings.prefetch):
                await slots.acquire()
                if self._stopping.is_set():
                    slots.release()
                    await delivery.nack(requeue=True)
                    break
                self.metrics.received.inc()
                task: asyncio.Task[object] = asyncio.create_task(self.processor.process(delivery))
                self.inflight[task] = delivery
                self.metrics.inflight.inc()
                task.add_done_callback(lambda t: self._done(t, slots))
        finally:
            self._consuming = False

    def _done(self, task: asyncio.Task[object], slots: asyncio.Semaphore) -> None:
        self.inflight.pop(task, None)
        self.metrics.inflight.dec()
        slots.release()
        self.metrics.abandoned.set(self.processor.abandoned_calls)

    async def _drain(self) -> None:
        if not self.inflight:
            return
        log.info(
            "draining %d in-flight envelope(s) for up to %.0fs",
            len(self.inflight),
            self.settings.graceful_shutdown_s,
        )
        _, pending = await asyncio.wait(set(self.inflight), timeout=self.settings.graceful_shutdown_s)
        for task in pending:
            delivery = self.inflight.get(task)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if delivery is not None and not delivery.settled:
                with contextlib.suppress(Exception):
                    await delivery.nack(requeue=True)
        if pending:
            log.warning("gave back %d envelope(s) still running at shutdown", len(pending))

    async def _keep_leases(self) -> None:
        lease = self.settings.transport.visibility_timeout_s
        while True:
            await asyncio.sleep(lease / 3)
            for delivery in list(self.inflight.values()):
                if not delivery.settled:
                    try:
                        await delivery.extend(lease)
                    except Exception as exc:
                        log.warning("could not extend the lease of a message on %s: %s", delivery.queue, exc)
