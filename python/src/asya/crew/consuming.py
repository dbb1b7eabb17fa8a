"""The consume loop every crew actor runs: bounded concurrency, graceful SIGTERM.

``serve()`` is called by ``happy_end.main`` and ``error_end.main`` (and by
tests, with a stop event instead of a signal). It owns the transport and the
store for the life of the process and hands each delivery to a ``HandleFn``
that must settle it (ack or nack). Keeping this loop separate keeps the two
actors down to their decisions.

Shutdown: on SIGTERM/SIGINT the loop stops taking deliveries, waits up to
``shutdown_grace_s`` for in-flight ones, then closes. Anything still unsettled
is simply not acknowledged, so the broker delivers it again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from asya import storage, transports
from asya.contracts import envelope
from asya.crew import metrics, reporting
from asya.crew.settings import CrewSettings

log = logging.getLogger("asya.crew")

_UNEXPECTED_ERROR_BACKOFF_S = 1.0
WARMUP_TIMEOUT_S = 15.0
"""Longest start-up delay a warm-up (e.g. declaring RabbitMQ delay queues) may cause."""


@dataclasses.dataclass
class Crew:
    """What a handler may use: the open transport, the store, the reporter, settings."""

    settings: CrewSettings
    transport: transports.Transport
    store: storage.ObjectStore
    reporter: reporting.Reporter
    stopping: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set when shutdown began: handlers cut their waits short and leave messages unacked."""
    metrics: metrics.CrewMetrics = dataclasses.field(default_factory=metrics.CrewMetrics)
    """Counters served at ``/metrics``."""
    known_queues: set[str] = dataclasses.field(default_factory=set)
    """Queues already ensured by this process (error-end declares a retry target once)."""


class HandleFn(Protocol):
    """Process one delivery and settle it (ack, or nack to get it again later)."""

    async def __call__(self, crew: Crew, delivery: transports.Delivery) -> None: ...


async def open_crew(settings: CrewSettings) -> Crew:
    """Connect the transport and build the store, reporter and context."""
    transport = transports.create(
        transports.TransportSettings(
            kind=settings.transport,
            url=settings.transport_url,
            region=settings.s3.region,
            visibility_timeout_s=settings.visibility_timeout_s,
        )
    )
    await transport.connect()
    store = storage.create_store(settings.storage_url, settings.s3)
    return Crew(settings, transport, store, reporting.Reporter(settings.gateway_url))


async def close_crew(crew: Crew) -> None:
    """Release what ``open_crew`` opened, in reverse order."""
    await crew.reporter.close()
    await crew.store.close()
    await crew.transport.close()


async def _handle_safely(handle: HandleFn, crew: Crew, delivery: transports.Delivery) -> None:
    try:
        await handle(crew, delivery)
    except Exception:
        # a bug or an outage we did not foresee: never drop, give it back after a pause
        log.exception("crew handler failed on a delivery from %s; requeueing", delivery.queue)
        if not crew.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(crew.stopping.wait(), _UNEXPECTED_ERROR_BACKOFF_S)
        with contextlib.suppress(Exception):
            await delivery.nack(requeue=True)
    finally:
        if not delivery.settled:
            with contextlib.suppress(Exception):
                await delivery.nack(requeue=True)


async def _consume(handle: HandleFn, crew: Crew, queue: str, inflight: set[asyncio.Task[None]]) -> None:
    slots = asyncio.Semaphore(crew.settings.prefetch)
    stream: AsyncIterator[transports.Delivery] = crew.transport.consume(queue, prefetch=crew.settings.prefetch)
    try:
        while True:
            await slots.acquire()
            try:
                delivery = await anext(stream)
            except StopAsyncIteration:
                return
            except BaseException:
                slots.release()
                raise
            task = asyncio.create_task(_handle_safely(handle, crew, delivery))
            inflight.add(task)

            def _done(t: asyncio.Task[None]) -> None:
                inflight.discard(t)
                slots.release()

            task.add_done_callback(_done)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def _warm(warmup: Callable[[Crew], Awaitable[None]], crew: Crew) -> None:
    try:
        await asyncio.wait_for(warmup(crew), WARMUP_TIMEOUT_S)
    except Exception:
        log.warning("warm-up failed or timed out; continuing without it", exc_info=True)


async def _health_server(port: int, ready: asyncio.Event, counters: metrics.CrewMetrics) -> asyncio.Server:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            path = line.split(b" ")[1] if line.count(b" ") >= 2 else b"/"
            if path.startswith(b"/metrics"):
                status, body, kind = b"200 OK", counters.render(), b"text/plain; version=0.0.4"
            elif path.startswith(b"/healthz") or (path.startswith(b"/readyz") and ready.is_set()):
                status, body, kind = b"200 OK", b"ok\n", b"text/plain"
            else:
                status, body, kind = b"503 Service Unavailable", b"not ready\n", b"text/plain"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(reply, "0.0.0.0", port)


async def serve(
    handle: HandleFn,
    actor: str,
    settings: CrewSettings,
    *,
    stop: asyncio.Event | None = None,
    extra_queues: tuple[str, ...] = (),
    warmup: Callable[[Crew], Awaitable[None]] | None = None,
) -> None:
    """Consume ``asya-<actor>`` with ``handle`` until ``stop`` is set or SIGTERM arrives.

    ``warmup`` runs before consuming starts, bounded by ``WARMUP_TIMEOUT_S`` (best effort: a
    failure or timeout is logged and consuming starts anyway).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    ready = asyncio.Event()
    crew = await open_crew(settings)
    queue = envelope.queue_name(actor)
    inflight: set[asyncio.Task[None]] = set()
    health: asyncio.Server | None = None
    try:
        if settings.health_port:
            health = await _health_server(settings.health_port, ready, crew.metrics)
        for q in (queue, *extra_queues):
            await crew.transport.ensure_queue(q)
        if warmup is not None:
            await _warm(warmup, crew)
        consumer = asyncio.create_task(_consume(handle, crew, queue, inflight))
        ready.set()
        log.info("%s consuming %s on %s", actor, queue, settings.transport)
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        ready.clear()
        crew.stopping.set()
        stopper.cancel()
        failure = consumer.exception() if consumer in done else None
        if consumer not in done:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        if inflight:
            log.info("%s draining %d in-flight envelope(s)", actor, len(inflight))
            await asyncio.wait(set(inflight), timeout=settings.shutdown_grace_s)
        if failure is not None:
            raise failure
    finally:
        for task in list(inflight):
            task.cancel()
        await close_crew(crew)
        if health is not None:
            health.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
