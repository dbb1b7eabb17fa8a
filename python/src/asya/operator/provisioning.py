"""Queues through the transports: create (queue + DLQ), measure depth, delete.

One connected transport per declared transport name, created lazily and reused; a
failure is reported as a ``status.Problem`` the handlers put into status, and the
connection is dropped so the next attempt reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from asya import transports
from asya.contracts import envelope
from asya.operator import config as configs
from asya.operator.reconciling import status

log = logging.getLogger(__name__)


class Queues:
    """Queue operations for every declared transport."""

    def __init__(
        self, declared: Mapping[str, configs.TransportConfig], timeout_s: float = 10.0, cooldown_s: float = 5.0
    ) -> None:
        self._declared = declared
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._open: dict[str, transports.Transport] = {}
        self._locks = {name: asyncio.Lock() for name in declared}
        self._failed: dict[str, tuple[float, BaseException]] = {}

    async def _transport(self, name: str) -> transports.Transport:
        # one lock per transport: a broker that hangs must not hold up actors on other transports
        async with self._locks[name]:
            if name not in self._open:
                failed = self._failed.get(name)
                if failed and time.monotonic() - failed[0] < self._cooldown_s:
                    raise failed[1]  # fail fast: 200 actors must not each wait out a dead broker's timeout
                tc = self._declared[name]
                t = transports.create(
                    transports.TransportSettings(kind=tc.type, url=tc.url, region=tc.region, options=tc.options)
                )
                try:
                    await asyncio.wait_for(t.connect(), self._timeout_s)
                except Exception as exc:
                    self._failed[name] = (time.monotonic(), exc)
                    raise
                self._failed.pop(name, None)
                self._open[name] = t
            return self._open[name]

    async def _drop(self, name: str) -> None:
        async with self._locks[name]:
            t = self._open.pop(name, None)
        if t is not None:
            try:
                await t.close()
            except Exception:  # closing a broken connection may fail too; it is gone either way
                log.debug("closing transport %s failed", name, exc_info=True)

    def _problem(self, name: str, what: str, exc: BaseException) -> status.Problem:
        tc = self._declared[name]
        detail = str(exc) or type(exc).__name__
        return status.Problem(
            "QueueUnavailable",
            f"cannot {what} on transport {name!r} ({tc.type}): {detail}; check the broker and the "
            "operator's transport settings (it retries on its own)",
        )

    async def ensure(self, transport: str, queue: str) -> status.Problem | None:
        """Create ``queue`` and the shared dead-letter queue; None when both exist."""
        try:
            t = await self._transport(transport)
            await asyncio.wait_for(t.ensure_queue(queue), self._timeout_s)
            await asyncio.wait_for(t.ensure_queue(envelope.DLQ_NAME), self._timeout_s)
        except Exception as exc:  # any broker failure becomes a readable condition
            await self._drop(transport)
            return self._problem(transport, f"create queue {queue!r}", exc)
        return None

    async def depth(self, transport: str, queue: str) -> int | None:
        """Messages waiting in ``queue``; None when the broker cannot tell right now."""
        try:
            t = await self._transport(transport)
            return int(await asyncio.wait_for(t.queue_depth(queue), self._timeout_s))
        except Exception:  # depth is informative only; the next tick retries
            log.debug("queue depth of %s on %s failed", queue, transport, exc_info=True)
            await self._drop(transport)
            return None

    async def delete(self, transport: str, queue: str) -> status.Problem | None:
        """Delete ``queue`` (the shared DLQ stays)."""
        try:
            t = await self._transport(transport)
            await asyncio.wait_for(t.delete_queue(queue), self._timeout_s)
        except Exception as exc:  # reported; kopf retries the deletion handler
            await self._drop(transport)
            return self._problem(transport, f"delete queue {queue!r}", exc)
        return None

    async def close(self) -> None:
        """Close every open transport."""
        for name in list(self._open):
            await self._drop(name)
