"""Waiting helpers for transport tests: take deliveries, consume up to a marker, wait on a condition.

Shared by the contract suite (``contract.py``) and the per-transport test
modules; every wait has a deadline, none is a bare sleep.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from asya.transports import Delivery

DEADLINE_S = 15.0
"""Longest wait for something that must happen."""


async def next_delivery(it: AsyncIterator[Delivery], timeout: float = DEADLINE_S) -> Delivery:
    return await asyncio.wait_for(anext(it), timeout)


async def take(it: AsyncIterator[Delivery], n: int, *, ack: bool = True) -> list[Delivery]:
    out = []
    for _ in range(n):
        d = await next_delivery(it)
        if ack:
            await d.ack()
        out.append(d)
    return out


async def until_marker(it: AsyncIterator[Delivery], marker: bytes) -> list[bytes]:
    """Ack everything up to and including ``marker``; return the bodies seen before it."""
    seen = []
    while True:
        d = await next_delivery(it)
        await d.ack()
        if d.body == marker:
            return seen
        seen.append(d.body)


async def eventually(check: Callable[[], Any], timeout: float = DEADLINE_S) -> None:
    """Poll ``check`` (returning a bool or an awaitable of one) until true or the deadline passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.01
    while not await _value(check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result
