"""Client side of the sidecar <-> runtime socket protocol (SPEC section 3).

``RuntimeClient.call`` sends one envelope and yields the runtime's output items
as they arrive. When the runtime advertises the ``stream`` and ``reuse``
features in its ready file, connections are kept in a small pool and generator
outputs arrive one frame per item; otherwise every call opens a fresh
connection and reads one JSON array, which is exactly Asya 0.1.x behaviour.

A call that fails at the socket level raises ``RuntimeConnectionError``; the
caller decides what that means for the envelope (requeue or error-end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from asya.contracts import protocol

_LIMIT = protocol.MAX_FRAME_BYTES


class RuntimeConnectionError(ConnectionError):
    """The runtime socket is missing, refused, or closed mid-call."""


class RuntimeProtocolError(RuntimeConnectionError):
    """The runtime answered something that is not a valid frame or response."""


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(protocol.FRAME_HEADER.size)
    (size,) = protocol.FRAME_HEADER.unpack(header)
    if size > _LIMIT:
        raise RuntimeProtocolError(f"runtime sent a {size}-byte frame, over the {_LIMIT} limit")
    return await reader.readexactly(size)


def encode_frame(body: bytes) -> bytes:
    return protocol.FRAME_HEADER.pack(len(body)) + body


class _Conn:
    __slots__ = ("reader", "stream", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.stream = stream

    def close(self) -> None:
        self.writer.close()


class RuntimeClient:
    """Talks to one runtime through its Unix socket."""

    def __init__(self, socket_dir: str, *, pool_size: int = 16) -> None:
        self.socket_path = os.path.join(socket_dir, protocol.SOCKET_NAME)
        self.ready_path = os.path.join(socket_dir, protocol.READY_FILE)
        self.pool_size = pool_size
        self._idle: list[_Conn] = []
        self.features: frozenset[str] = frozenset()

    def is_ready(self) -> bool:
        return os.path.exists(self.ready_path) and os.path.exists(self.socket_path)

    def read_features(self) -> frozenset[str]:
        """Features the runtime offers; a 0.1.x ready file (not our JSON) offers none."""
        try:
            with open(self.ready_path, encoding="utf-8") as fh:
                info = json.load(fh)
            feats = info.get("features", []) if isinstance(info, dict) else []
            self.features = frozenset(str(f) for f in feats) & {
                protocol.FEATURE_STREAM,
                protocol.FEATURE_REUSE,
            }
        except (OSError, ValueError):
            self.features = frozenset()
        return self.features

    async def wait_ready(self, timeout_s: float, poll_s: float = 0.05) -> None:
        """Wait for the ready file and a socket that accepts connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self.is_ready():
                # Read once per (re)start of the runtime, not on every connection: it is a file read.
                self.read_features()
                try:
                    conn = await self._open()
                except RuntimeConnectionError:
                    pass
                else:
                    self._release(conn)
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

    async def _open(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=_LIMIT)
        except OSError as exc:
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
                self.features = frozenset()
                return await self._open()
            agreed = (
                answer[protocol.HELLO_KEY].get("features", []) if isinstance(answer[protocol.HELLO_KEY], dict) else []
            )
            conn.stream = protocol.FEATURE_STREAM in agreed
        return conn

    def _release(self, conn: _Conn) -> None:
        if protocol.FEATURE_REUSE in self.features and len(self._idle) < self.pool_size:
            self._idle.append(conn)
        else:
            conn.close()

    async def call(self, body: bytes) -> AsyncIterator[dict[str, Any]]:
        """Send one envelope (already-encoded JSON) and yield each output item."""
        conn = self._idle.pop() if self._idle else await self._open()
        finished = False
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
            else:
                response = _loads(await read_frame(conn.reader))
                if not isinstance(response, list):
                    raise RuntimeProtocolError(f"runtime response must be a JSON array, got {type(response).__name__}")
                for item in response:
                    yield _item(item)
            finished = True
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise RuntimeConnectionError(f"runtime connection lost mid-call: {exc or type(exc).__name__}") from exc
        finally:
            # A call abandoned half-way (timeout, cancel) leaves unread frames: never reuse that socket.
            if finished:
                self._release(conn)
            else:
                with contextlib.suppress(Exception):
                    conn.close()

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
