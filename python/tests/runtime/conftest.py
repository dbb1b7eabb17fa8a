from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.procs import Proc, start_runtime


class RawClient:
    """Speaks SPEC section 3 with nothing but the socket module: any sidecar could."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))

    def send(self, obj: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(obj).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def recv(self) -> Any:
        (size,) = struct.unpack(">I", self._exact(4))
        return json.loads(self._exact(size).decode("utf-8"))

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("runtime closed the connection")
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def socket_dir(tmp_path: Path) -> Path:
    # AF_UNIX paths are limited to ~107 bytes; pytest tmp paths can be longer.
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="asya-sock-"))
    return d


@pytest.fixture
def runtime(socket_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(handler: str, mode: str = "payload", **env: Any) -> Proc:
        proc = start_runtime(f"support.handlers.{handler}", socket_dir, tmp_path, mode, **env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def client(socket_dir: Path) -> Iterator[Callable[[], RawClient]]:
    opened: list[RawClient] = []

    def connect() -> RawClient:
        c = RawClient(socket_dir / "asya-runtime.sock")
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def envelope(payload: Any, actors: list[str] | None = None, current: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": "e-1", "route": {"actors": actors or ["a", "b"], "current": current}, "payload": payload, **extra}
