"""A foreign runtime for tests: speaks SPEC section 3 framing and answers every request with RAW_RESPONSE.

It stands in for a runtime we do not ship (Asya 0.1.x's, or a buggy one) that sends
items our runtime never would, e.g. a success item without ``route``. It writes a
plain ready file (no features), so the sidecar uses the plain 0.1.x protocol.
Run: ``python raw_runtime.py SOCKET_DIR`` with ``RAW_RESPONSE`` = a JSON array.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading

FRAME = struct.Struct(">I")


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _serve(conn: socket.socket, response: bytes) -> None:
    with conn:
        try:
            (size,) = FRAME.unpack(_read_exact(conn, FRAME.size))
            _read_exact(conn, size)
            conn.sendall(FRAME.pack(len(response)) + response)
        except (EOFError, OSError):
            pass


def main() -> None:
    directory = sys.argv[1]
    response = os.environ["RAW_RESPONSE"].encode()
    path = os.path.join(directory, "asya-runtime.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    with open(os.path.join(directory, "runtime-ready"), "w") as fh:
        fh.write("ready\n")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve, args=(conn, response), daemon=True).start()


if __name__ == "__main__":
    main()
