"""Cross-process wake-ups for the ``local`` transport.

Without a server there is nobody to push a new message to a consumer in
another process, and polling SQLite fast enough for low latency would cost
a write lock per poll. Instead each transport that consumes binds one
datagram socket in Linux's abstract namespace (no file, nothing to clean up)
and lists its name per queue in the database; a publisher, after its commit,
sends the queue name to every listener of that queue. A consumer that gets
the datagram claims at once; polling stays as the safety net (a lost datagram
costs at most one poll interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("asya.transports.local")
_ids = itertools.count()


class Doorbell:
    """One receiving socket per transport; ``ring`` sends to other processes' sockets."""

    def __init__(self, db_path: Path, on_ring: Callable[[str], None]) -> None:
        digest = hashlib.sha1(str(db_path.resolve()).encode()).hexdigest()[:12]
        self.name = f"asya-bell-{digest}-{os.getpid()}-{next(_ids)}"
        self._on_ring = on_ring
        self._recv: socket.socket | None = None
        self._send: socket.socket | None = None
        self._warned: set[str] = set()
        """Listeners we already warned about: a busy one would otherwise log on every publish."""

    def listen(self) -> None:
        """Start receiving (idempotent); call from the event loop."""
        if self._recv is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind("\0" + self.name)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        self._recv = sock

    def ring(self, names: list[str], queue: str) -> list[str]:
        """Notify ``names`` that ``queue`` has a message; return the names that no longer exist."""
        if self._send is None:
            self._send = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._send.setblocking(False)
        data = queue.encode()
        dead = []
        for name in names:
            if name == self.name:
                continue  # our own consumers are woken in-process
            try:
                self._send.sendto(data, "\0" + name)
            except (ConnectionRefusedError, FileNotFoundError):
                dead.append(name)  # its process is gone
            except OSError as exc:
                # Usually a full buffer (the listener has wake-ups queued already); either way it
                # still finds the message by polling, only later. Said once per listener.
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("local transport: doorbell %s for queue %r not rung (%r); it polls", name, queue, exc)
        return dead

    def _readable(self) -> None:
        assert self._recv is not None
        queues = set()
        while True:
            try:
                queues.add(self._recv.recv(512).decode(errors="replace"))
            except (BlockingIOError, InterruptedError):
                break
        for queue in queues:
            self._on_ring(queue)

    def close(self) -> None:
        if self._recv is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._recv.fileno())
            self._recv.close()
            self._recv = None
        if self._send is not None:
            self._send.close()
            self._send = None
