"""Sidecar <-> runtime wire protocol constants (SPEC section 3).

Frames in both directions are a 4-byte big-endian unsigned length followed by
that many bytes of UTF-8 JSON. The runtime module keeps its own copy of these
values because it must run as a single stdlib-only file; a test proves the two
copies agree.
"""

from __future__ import annotations

import struct

SOCKET_DIR_DEFAULT = "/var/run/asya"
SOCKET_NAME = "asya-runtime.sock"
READY_FILE = "runtime-ready"

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame either side accepts (bytes); guards against a corrupt length."""

# Negotiated extension: the runtime lists the features it offers in the ready
# file as JSON; a sidecar that wants them opens a connection with a hello frame.
# A peer that does not advertise or send a hello gets the plain 0.1.x protocol.
# A hello frame (and its answer) is a JSON object whose only key is HELLO_KEY:
# an envelope needs "route" and "payload", so no envelope is ever read as a hello,
# and an envelope may carry a top-level "asya_hello" field like any unknown field.
HELLO_KEY = "asya_hello"
PROTOCOL_VERSION = 1
FEATURE_STREAM = "stream"
"""Generator outputs are sent as separate frames while the handler runs."""
FEATURE_REUSE = "reuse"
"""Several request/response exchanges share one connection."""

# In stream mode each frame is an object with exactly one of these keys.
STREAM_ITEM = "item"
STREAM_END = "end"
