"""The Asya runtime: hosts a user handler behind the sidecar's Unix socket.

Everything lives in ``server.py`` so it can be copied into any image as one
stdlib-only file; ``source_path()`` tells the operator which file to ship.
"""

from pathlib import Path

from asya.runtime.server import Runtime, load_handler, main

__all__ = ["Runtime", "load_handler", "main", "source_path"]


def source_path() -> Path:
    """The single file that is the whole runtime."""
    return Path(__file__).with_name("server.py")
