"""``python -m asya.sidecar``: run one actor's sidecar from environment variables."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from asya.contracts import AsyaError
from asya.engine import Engine, run_until_signalled
from asya.sidecar.processing import RuntimeProcessor
from asya.sidecar.settings import SidecarSettings


async def _main() -> None:
    settings = SidecarSettings.from_env()
    await run_until_signalled(Engine(settings.engine, RuntimeProcessor(settings)))


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop when installed (part of the sidecar extra): cuts per-message overhead in aio-pika and sockets."""
    if os.environ.get("ASYA_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run
    return asyncio.run


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("ASYA_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        _event_loop_runner()(_main())
    except (ValueError, TimeoutError, AsyaError) as exc:  # bad settings or no runtime: say so plainly
        logging.getLogger("asya.sidecar").critical("cannot run: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
