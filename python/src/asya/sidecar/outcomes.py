"""How one delivery in a sidecar ended, and why a runtime is not being called right now.

``Outcome`` is the ``outcome`` label of ``asya_sidecar_messages_processed_total`` and the
``status`` of the progress report; ``RuntimeGate`` holds envelopes while the runtime is
unreachable. Split from ``processing`` so the data path there stays readable.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from asya.sidecar.runtime_client import RuntimeClient

log = logging.getLogger("asya.sidecar")


class Outcome(str, enum.Enum):
    """How one delivery ended; the ``outcome`` label of the processed-messages metric."""

    SUCCESS = "success"
    """Outputs published to the next queue(s) or happy-end."""
    ENDED_EARLY = "ended_early"
    """The handler returned nothing: the input went to happy-end."""
    ERROR = "error"
    """The envelope went to error-end (bad input, handler error, timeout)."""
    REQUEUED = "requeued"
    """The runtime was unreachable: the input goes back to the broker."""
    CANCELLED = "cancelled"
    """The job was cancelled: dropped before the runtime saw it, nothing published."""
    CANCELLED_AFTER_CALL = "cancelled_after_call"
    """The job was cancelled while the handler ran: its outputs were dropped, nothing (more) published."""


DROP_STAGE = {Outcome.CANCELLED: "before_call", Outcome.CANCELLED_AFTER_CALL: "outputs"}


class RuntimeGate:
    """Open while the runtime answers; closed from a connection failure until it is back."""

    def __init__(self, runtime: RuntimeClient, on_reopen: Callable[[], None] | None = None) -> None:
        self._runtime = runtime
        self._on_reopen = on_reopen
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
        if self._on_reopen is not None:
            self._on_reopen()  # a new runtime process answers: the runtime restarts metric
        self._open.set()


def drop_message(job: object, env_id: object, actor: str, stage: str) -> str:
    """What the drop report and the log say about an envelope dropped for a cancelled job."""
    when = "before its handler ran" if stage == "before_call" else "after its handler ran (outputs dropped)"
    return f"job {job} was cancelled: envelope {env_id} dropped at actor {actor!r} {when}"


__all__ = ["DROP_STAGE", "Outcome", "RuntimeGate", "drop_message"]
