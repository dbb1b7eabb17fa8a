"""A stand-in for an Asya 0.1.x runtime, written from SPEC section 3 as that version behaves.

Single-threaded and blocking: ``listen(5)``, accept one connection, read one
frame, answer one JSON array, close, accept the next. Its ready file is plain
text (no ``features``), so a sidecar must speak the plain protocol to it and
must not open more connections than it can queue. Payload mode only: the
payload comes back unchanged (``{"fail": true}`` answers a processing_error),
``route.current`` advanced by one, headers kept.

Run as ``python legacy_runtime.py``; ``ASYA_SOCKET_DIR`` names the socket
folder. SIGTERM removes the socket and ready file and exits. Counts calls in
``<socket dir>/calls`` on exit, for tests that want to know.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from typing import Any

_HEADER = struct.Struct(">I")


def _exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def answer(env: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(env.get("payload"), dict) and env["payload"].get("fail"):
        return [{"error": "processing_error", "details": {"message": "asked to fail", "type": "ValueError"}}]
    route = dict(env["route"])
    route["current"] += 1
    item: dict[str, Any] = {"payload": env["payload"], "route": route}
    if "headers" in env:
        item["headers"] = env["headers"]
    return [item]


def serve_one(conn: socket.socket) -> bool:
    """One request, one answer; False when the peer closed without sending (a readiness probe)."""
    header = _exact(conn, _HEADER.size)
    if header is None:
        return False
    (size,) = _HEADER.unpack(header)
    body = _exact(conn, size)
    if body is None:
        return False
    data = json.dumps(answer(json.loads(body))).encode()
    conn.sendall(_HEADER.pack(len(data)) + data)
    return True


def main() -> int:
    socket_dir = os.environ.get("ASYA_SOCKET_DIR", "/var/run/asya")
    sock_path = os.path.join(socket_dir, "asya-runtime.sock")
    ready_path = os.path.join(socket_dir, "runtime-ready")
    for path in (sock_path, ready_path):
        if os.path.exists(path):
            os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(5)
    calls = 0

    def stop(*_: object) -> None:
        for path in (ready_path, sock_path):
            if os.path.exists(path):
                os.unlink(path)
        with open(os.path.join(socket_dir, "calls"), "w") as fh:
            fh.write(str(calls))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(ready_path, "w") as fh:
        fh.write("ready\n")
    while True:
        conn, _ = server.accept()
        try:
            if serve_one(conn):
                calls += 1
        except (OSError, ValueError) as exc:
            print(f"legacy runtime: connection failed: {exc!r}", file=sys.stderr, flush=True)
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
