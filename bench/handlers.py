"""Handlers the benchmark runtimes load (``ASYA_HANDLER=bench.handlers.echo``).

A plain ``def``: that is what most user handlers are, so the measured path
includes the runtime's thread-pool hop that real handlers pay.
"""

from __future__ import annotations

from typing import Any


def echo(payload: Any) -> Any:
    """No-op: the payload goes on unchanged."""
    return payload


async def echo_async(payload: Any) -> Any:
    """The same no-op as ``async def``: runs on the runtime's loop, no thread-pool hop.

    Not used by ``make bench``; ``BENCH_HANDLER=bench.handlers.echo_async`` measures what
    the hop costs.
    """
    return payload
