"""The crew's end actors as processors of the consumer engine.

``serve()`` is called by ``happy_end.main`` and ``error_end.main`` (and by
tests, with a stop event instead of a signal). It builds an
``asya.engine.Engine`` for ``asya-<actor>`` with a ``CrewProcessor`` around a
``HandleFn``: the handler decides (store, retry, dead-letter), publishes and
returns a ``Verdict``; the engine acknowledges. A delivery the engine takes
away (delivery limit, unexpected exception) takes the dead-letter path, since
sending an end actor's failure to error-end could loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from asya import transports
from asya.crew import deadletter
from asya.crew.context import Crew
from asya.crew.settings import CrewSettings
from asya.engine import Engine, Failure, Verdict, failures, run_until_signalled

log = logging.getLogger("asya.crew")

WARMUP_TIMEOUT_S = 15.0
"""Longest start-up delay a warm-up (e.g. declaring RabbitMQ delay queues) may cause."""


class HandleFn(Protocol):
    """Process one delivery: publish/store what it becomes, then say whether to ack it."""

    async def __call__(self, crew: Crew, delivery: transports.Delivery) -> Verdict: ...


class CrewProcessor:
    """Adapts a crew ``HandleFn`` to the engine's ``Processor`` protocol."""

    def __init__(
        self,
        actor: str,
        handle: HandleFn,
        settings: CrewSettings,
        warmup: Callable[[Crew], Awaitable[None]] | None = None,
    ) -> None:
        self.actor = actor
        self.handle = handle
        self.settings = settings
        self.warmup = warmup
        self.crew: Crew | None = None

    async def start(self, engine: Engine) -> None:
        if engine.store is None:
            raise ValueError("ASYA_STORAGE_URL is required for the end actors (file:///abs/dir or s3://bucket/prefix)")
        self.crew = Crew(
            self.settings, engine.transport, engine.store, engine.reporter, engine.metrics, engine.stopping
        )
        if self.warmup is not None:
            try:
                await asyncio.wait_for(self.warmup(self.crew), WARMUP_TIMEOUT_S)
            except Exception:
                log.warning("warm-up failed or timed out; continuing without it", exc_info=True)

    async def process(self, delivery: transports.Delivery) -> Verdict:
        assert self.crew is not None
        return await self.handle(self.crew, delivery)

    async def give_up(self, delivery: transports.Delivery, failure: Failure) -> None:
        assert self.crew is not None
        record = failures.record_for(delivery.body, self.actor, failure)
        await deadletter.dead_letter(self.crew, record, self.actor, failure.reason, failure.message)

    def health(self) -> tuple[bool, str]:
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return True, "ok"

    async def close(self) -> None:
        return None


async def pause(crew: Crew, seconds: float) -> None:
    """Wait ``seconds`` unless shutdown begins first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(crew.stopping.wait(), seconds)


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
    engine = Engine(settings.engine(actor), CrewProcessor(actor, handle, settings, warmup), extra_queues=extra_queues)
    watcher = None
    if stop is not None:

        async def relay() -> None:
            await stop.wait()
            engine.stop()

        watcher = asyncio.create_task(relay())
    try:
        await run_until_signalled(engine)
    finally:
        if watcher is not None:
            watcher.cancel()


__all__ = ["Crew", "CrewProcessor", "HandleFn", "pause", "serve"]
