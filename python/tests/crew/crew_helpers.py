"""Helpers for crew tests: a local transport in a temp dir, crew actors run in-process.

Test modules import this as ``crew_helpers`` (the test dir is on sys.path).

In-process runs call the same ``consuming.serve`` the ``python -m asya.crew``
processes call, with a stop event instead of SIGTERM; the process interface
itself is covered by test_crew_process.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from asya import transports
from asya.crew import consuming, error_end, happy_end
from asya.crew.settings import CrewSettings, RetrySettings

HANDLERS: dict[str, consuming.HandleFn] = {"happy-end": happy_end.handle, "error-end": error_end.handle}


def settings_for(tmp: Path, **overrides: Any) -> CrewSettings:
    """Crew settings on the local transport and a folder store under ``tmp``."""
    retry = overrides.pop("retry", RetrySettings(backoff_base_s=0.05, backoff_max_s=1.0))
    base: dict[str, Any] = {
        "transport": "local",
        "transport_url": str(tmp / "queues"),
        "storage_url": (tmp / "store").as_uri(),
        "prefetch": 8,
        "visibility_timeout_s": 30.0,
        "shutdown_grace_s": 5.0,
        "retry": retry,
    }
    base.update(overrides)
    return CrewSettings(**base)


@contextlib.asynccontextmanager
async def running(actor: str, settings: CrewSettings) -> AsyncIterator[None]:
    """Run crew actor ``actor`` in this event loop for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(consuming.serve(HANDLERS[actor], actor, settings, stop=stop, extra_queues=("asya-dlq",)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def open_transport(settings: CrewSettings, **options: str) -> transports.Transport:
    t = transports.create(
        transports.TransportSettings(kind=settings.transport, url=settings.transport_url, options=options)
    )
    await t.connect()
    return t


async def take(t: transports.Transport, queue: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Consume and ack exactly ``n`` messages from ``queue`` (JSON-decoded), or fail after ``timeout``."""
    got: list[dict[str, Any]] = []

    async def collect() -> None:
        async for d in t.consume(queue, prefetch=max(1, n)):
            got.append(json.loads(d.body))
            await d.ack()
            if len(got) >= n:
                return

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise AssertionError(f"got {len(got)} of {n} message(s) from {queue} within {timeout}s") from None
    return got


async def eventually(check: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` (sync or async) until truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def stored(root: Path, sub: str = "") -> list[Path]:
    """Every JSON object stored under ``root/sub``; with no ``sub``, only results (not errors/, blobs/)."""
    base = root / sub if sub else root
    if not base.exists():
        return []
    files = [p for p in base.rglob("*.json") if not p.name.startswith(".tmp-")]
    if not sub:
        files = [p for p in files if p.relative_to(root).parts[0] not in {"errors", "blobs"}]
    return sorted(files)


def error_message(
    env_id: str,
    actors: list[str],
    current: int,
    *,
    error: str = "processing_error",
    exc_type: str = "ValueError",
    headers: dict[str, Any] | None = None,
    original_payload: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """An error-end message as the sidecar writes it (SPEC section 5)."""
    return {
        "id": env_id,
        "parent_id": None,
        "route": {"actors": actors, "current": current},
        "headers": dict(headers or {}),
        "payload": {
            "error": error,
            "details": {"message": "boom", "type": exc_type, "traceback": "Traceback ..."},
            "original_payload": original_payload,
        },
        **extra,
    }


def drained(t: transports.Transport, queue: str) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: nothing ready in ``queue``."""

    async def check() -> bool:
        return await t.queue_depth(queue) == 0

    return check


async def take_id(t: transports.Transport, queue: str, env_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Consume ``queue`` (acking everything) until the message with id ``env_id`` arrives.

    For queues shared by every test on a broker (``asya-dlq``), where earlier tests may
    have left messages.
    """

    async def find() -> dict[str, Any]:
        async for d in t.consume(queue, prefetch=10):
            msg = json.loads(d.body)
            await d.ack()
            if isinstance(msg, dict) and msg.get("id") == env_id:
                return msg
        raise AssertionError(f"{queue} closed before {env_id} arrived")

    try:
        return await asyncio.wait_for(find(), timeout)
    except TimeoutError:
        raise AssertionError(f"{env_id} did not reach {queue} within {timeout}s") from None
