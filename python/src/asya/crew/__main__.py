"""``python -m asya.crew happy-end|error-end``: the crew actor processes.

``asya dev run`` spawns exactly these commands, and the crew image uses them as
its entry point; all configuration comes from ``CrewSettings.from_env()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from asya.crew import error_end, happy_end
from asya.crew.settings import CrewSettings

ACTORS = {"happy-end": happy_end.main, "error-end": error_end.main}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ACTORS:
        print(f"usage: python -m asya.crew {{{'|'.join(ACTORS)}}}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=os.environ.get("ASYA_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {args[0]} %(levelname)s %(name)s: %(message)s",
    )
    settings = CrewSettings.from_env()
    if not settings.storage_url:
        print("ASYA_STORAGE_URL is required (file:///abs/dir or s3://bucket/prefix)", file=sys.stderr)
        return 2
    asyncio.run(ACTORS[args[0]](settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
