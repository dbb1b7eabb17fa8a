"""Client side of the sidecar <-> runtime socket protocol (SPEC section 3).

``RuntimeClient.call`` sends one envelope and yields the runtime's output items
as they arrive. When the runtime advertises the ``stream`` and ``reuse``
features in its ready file, connections are kept in a small pool and generator
outputs arrive one frame per item; otherwise every call opens a fresh
connection and reads one JSON array, which is exactly Asya 0.1.x behaviour.

How many calls run at once follows what the runtime advertises: a runtime with
features serves many connections (up to ``pool_size``); a plain (0.1.x) ready
file means a runtime that serves one connection at a time behind a small listen
backlog, so at most ``plain_connections`` calls go to it at once and the rest
wait here, off the handler's clock.

A full listen backlog (``EAGAIN`` on connect) is back-pressure from a live
runtime: the connect is retried with backoff. A crash is counted only when the
runtime is gone: its socket or ready file disappeared, the socket refused
connections for longer than ``refused_grace_s``, or a connection dropped
mid-call. Those raise ``RuntimeConnectionError``; the caller decides what that
means for the envelope (requeue or error-end).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from asya.contracts import protocol

_LIMIT = protocol.MAX_FRAME_BYTES
_BACKOFF_FIRST_S = 0.002
_BACKOFF_MAX_S = 0.25

log = logging.getLogger("asya.sidecar.runtime")


class RuntimeConnectionError(ConnectionError):
    """The runtime socket is missing, refused, or closed mid-call."""


class RuntimeProtocolError(RuntimeConnectionError):
    """The runtime answered something that is not a valid frame or response."""


class RuntimeGoneError(RuntimeConnectionError):
    """No runtime process behind the socket: files gone, or connections refused past the grace period."""


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(protocol.FRAME_HEADER.size)
    (size,) = protocol.FRAME_HEADER.unpack(header)
    if size > _LIMIT:
        raise RuntimeProtocolError(f"runtime sent a {size}-byte frame, over the {_LIMIT} limit")
    return await reader.readexactly(size)


def encode_frame(body: bytes) -> bytes:
    return protocol.FRAME_HEADER.pack(len(body)) + body


class _Conn:
    __slots__ = ("clean", "done", "lease", "reader", "stream", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.stream = stream
        self.clean = False
        """The last exchange was read to its end: the socket is in step and may be reused."""
        self.done = False
        self.lease: Lease | None = None

    def close(self) -> None:
        self.writer.close()


class _Slots:
    """A FIFO semaphore whose size can change (when the runtime's advertised features are read)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.busy = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.busy < self.limit and not self._waiters:
            self.busy += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # granted: busy was counted for us in _wake
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted and cancelled in the same tick: hand the slot on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        self.busy -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.busy < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.busy += 1
                fut.set_result(None)


class Lease:
    """One call's place in the runtime's concurrency; ``release`` is idempotent."""

    __slots__ = ("_slots", "held")

    def __init__(self, slots: _Slots) -> None:
        self._slots = slots
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._slots.release()


class RuntimeClient:
    """Talks to one runtime through its Unix socket."""

    def __init__(
        self,
        socket_dir: str,
        *,
        pool_size: int = 16,
        plain_connections: int = 1,
        refused_grace_s: float = 5.0,
    ) -> None:
        self.socket_path = os.path.join(socket_dir, protocol.SOCKET_NAME)
        self.ready_path = os.path.join(socket_dir, protocol.READY_FILE)
        self.pool_size = pool_size
        self.plain_connections = plain_connections
        self.refused_grace_s = refused_grace_s
        self._idle: list[_Conn] = []
        self.features: frozenset[str] = frozenset()
        self._slots = _Slots(plain_connections)
        self.backpressure_waits = 0
        """Connects retried because the runtime's listen backlog was full (a busy runtime, not a dead one)."""

    @property
    def concurrency(self) -> int:
        """Calls that may run at once, from what the runtime advertised."""
        return self._slots.limit

    def is_ready(self) -> bool:
        return os.path.exists(self.ready_path) and os.path.exists(self.socket_path)

    def read_features(self) -> frozenset[str]:
        """Features the runtime offers; a 0.1.x ready file (not our JSON) offers none."""
        try:
            with open(self.ready_path, encoding="utf-8") as fh:
                info = json.load(fh)
            feats = info.get("features", []) if isinstance(info, dict) else []
            features = frozenset(str(f) for f in feats) & {protocol.FEATURE_STREAM, protocol.FEATURE_REUSE}
        except (OSError, ValueError):
            features = frozenset()
        self._set_features(features)
        return self.features

    def _set_features(self, features: frozenset[str]) -> None:
        self.features = features
        # A runtime that says nothing about itself is a 0.1.x one: one connection at a time.
        self._slots.resize(self.pool_size if features else self.plain_connections)

    async def wait_ready(self, timeout_s: float, poll_s: float = 0.05) -> None:
        """Wait for the ready file and a socket that a live process listens on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self.is_ready():
                # Read once per (re)start of the runtime, not on every connection: it is a file read.
                self.read_features()
                try:
                    sock = self._try_connect()
                except RuntimeGoneError:
                    sock = "gone"  # removed between the check and the connect: a restart under way
                if sock == "busy":
                    return  # a full backlog has a listener behind it
                if isinstance(sock, socket.socket):
                    try:
                        conn = await self._open(sock)
                    except RuntimeConnectionError:
                        pass
                    else:
                        conn.clean = True
                        self.finish(conn)
                        return
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"runtime not ready after {timeout_s:.0f}s: no {protocol.READY_FILE} / "
                    f"{protocol.SOCKET_NAME} in {os.path.dirname(self.socket_path)}; is the runtime container "
                    "running and ASYA_SOCKET_DIR the same on both sides?"
                )
            await asyncio.sleep(poll_s)

    def reset(self) -> None:
        """Drop pooled connections (after the runtime restarted)."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def _try_connect(self) -> socket.socket | str:
        """One non-blocking connect: the socket, ``"busy"`` (backlog full), ``"refused"``, or raises when gone.

        Done by hand because asyncio's own Unix connect takes ``EAGAIN`` for "in progress" and hands back a
        socket that is not connected, which then fails mid-call and looks like a crash.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.socket_path)
        except BlockingIOError:
            sock.close()
            return "busy"
        except ConnectionRefusedError:
            sock.close()
            return "refused"
        except OSError as exc:
            sock.close()
            raise RuntimeGoneError(f"cannot connect to runtime at {self.socket_path}: {exc}") from exc
        return sock

    async def _connect(self) -> socket.socket:
        """Connect, waiting out back-pressure; raise ``RuntimeGoneError`` only when no runtime is there."""
        loop = asyncio.get_running_loop()
        delay = _BACKOFF_FIRST_S
        refused_since: float | None = None
        while True:
            if not self.is_ready():
                raise RuntimeGoneError(
                    f"runtime gone: {protocol.SOCKET_NAME} or {protocol.READY_FILE} missing in "
                    f"{os.path.dirname(self.socket_path)}"
                )
            sock = self._try_connect()
            if isinstance(sock, socket.socket):
                return sock
            if sock == "busy":
                if not self.backpressure_waits:
                    log.info(
                        "runtime's listen backlog is full: waiting for it (back-pressure, not a crash); "
                        "ASYA_RUNTIME_CONNECTIONS bounds the calls sent to a runtime without features"
                    )
                self.backpressure_waits += 1
                refused_since = None
            else:
                now = loop.time()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since >= self.refused_grace_s:
                    raise RuntimeGoneError(
                        f"runtime at {self.socket_path} refused connections for {self.refused_grace_s:g}s: "
                        "no process listens on the socket"
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _open(self, sock: socket.socket | None = None) -> _Conn:
        if sock is None:
            sock = await self._connect()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_LIMIT)
        except OSError as exc:
            sock.close()
            raise RuntimeConnectionError(f"cannot connect to runtime at {self.socket_path}: {exc}") from exc
        conn = _Conn(reader, writer, stream=False)
        if self.features:
            hello = {protocol.HELLO_KEY: {"protocol": protocol.PROTOCOL_VERSION, "features": sorted(self.features)}}
            try:
                writer.write(encode_frame(json.dumps(hello).encode()))
                answer = json.loads(await read_frame(reader))
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                raise RuntimeConnectionError(f"runtime hello failed: {exc}") from exc
            if not (isinstance(answer, dict) and set(answer) == {protocol.HELLO_KEY}):
                # It advertised features but answered like a plain 0.1.x runtime (which may
                # close after one answer): speak the plain protocol to it from now on.
                conn.close()
                self._set_features(frozenset())
                return await self._open()
            agreed = (
                answer[protocol.HELLO_KEY].get("features", []) if isinstance(answer[protocol.HELLO_KEY], dict) else []
            )
            conn.stream = protocol.FEATURE_STREAM in agreed
        return conn

    def finish(self, conn: _Conn) -> None:
        """Give a connection back after a call: pooled when it is in step and reusable, closed otherwise.

        Also hands the call's slot to the next caller, so with a one-connection runtime the next call
        starts while this one's outputs are still being published.
        """
        if conn.done:
            return
        conn.done = True
        if conn.lease is not None:
            conn.lease.release()
            conn.lease = None
        if conn.clean and protocol.FEATURE_REUSE in self.features and len(self._idle) < self.pool_size:
            self._idle.append(conn)
        else:
            with contextlib.suppress(Exception):
                conn.close()

    async def reserve(self) -> Lease:
        """Wait for one of the calls the runtime takes at once; waiting here is not the handler's time."""
        await self._slots.acquire()
        return Lease(self._slots)

    async def checkout(self, lease: Lease) -> _Conn:
        """A connection (pooled or new) for one call under ``lease``; ``finish`` releases both."""
        if self._idle:
            conn = self._idle.pop()
            conn.done = conn.clean = False
        else:
            conn = await self._open()
        conn.lease = lease
        return conn

    async def exchange(self, conn: _Conn, body: bytes) -> AsyncIterator[dict[str, Any]]:
        """Send one envelope (already-encoded JSON) on ``conn`` and yield each output item."""
        try:
            conn.writer.write(encode_frame(body))
            if conn.stream:
                while True:
                    frame = _loads(await read_frame(conn.reader))
                    if not isinstance(frame, dict):
                        raise RuntimeProtocolError(f"stream frame must be an object, got {type(frame).__name__}")
                    if protocol.STREAM_END in frame:
                        break
                    yield _item(frame.get(protocol.STREAM_ITEM))
                conn.clean = True
            else:
                response = _loads(await read_frame(conn.reader))
                if not isinstance(response, list):
                    raise RuntimeProtocolError(f"runtime response must be a JSON array, got {type(response).__name__}")
                items = [_item(item) for item in response]
                conn.clean = True
                self.finish(conn)  # the whole answer is in: free the runtime before publishing
                for item in items:
                    yield item
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise RuntimeConnectionError(f"runtime connection lost mid-call: {exc or type(exc).__name__}") from exc
        finally:
            # A call abandoned half-way (timeout, cancel) leaves unread frames: never reuse that socket.
            self.finish(conn)

    async def call(self, body: bytes) -> AsyncIterator[dict[str, Any]]:
        """``exchange`` on a connection of its own, within the runtime's concurrency."""
        lease = await self.reserve()
        try:
            conn = await self.checkout(lease)
            async for item in self.exchange(conn, body):
                yield item
        finally:
            lease.release()

    def close(self) -> None:
        self.reset()


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise RuntimeProtocolError(f"runtime sent invalid JSON: {exc}") from exc


def _item(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict) or not ("error" in obj or "payload" in obj):
        raise RuntimeProtocolError(f"runtime output item must be a success or error object, got {obj!r:.200}")
    return obj
