"""When a refused or missing runtime socket counts as a crash (the sidecar's runtime client, no broker)."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asya.contracts import protocol
from asya.sidecar.runtime_client import RuntimeClient, RuntimeGoneError, encode_frame, read_frame

BODY = json.dumps({"id": "c-1", "route": {"actors": ["a"], "current": 0}, "payload": {"n": 1}}).encode()


@pytest.fixture
def socket_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="asya-rc-"))  # AF_UNIX paths must stay short


def _stale_socket(path: Path) -> None:
    """What a SIGKILLed runtime leaves: the socket file, with nobody listening (connect: ECONNREFUSED)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


async def _answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    env = json.loads(await read_frame(reader))
    route = {**env["route"], "current": env["route"]["current"] + 1}
    writer.write(encode_frame(json.dumps([{"payload": env["payload"], "route": route}]).encode()))
    await writer.drain()
    writer.close()


async def _collect(client: RuntimeClient) -> list[dict[str, Any]]:
    return [item async for item in client.call(BODY)]


@pytest.fixture
def stale(socket_dir: Path) -> Iterator[Path]:
    _stale_socket(socket_dir / protocol.SOCKET_NAME)
    (socket_dir / protocol.READY_FILE).write_text("ready\n")
    yield socket_dir


async def test_a_socket_that_keeps_refusing_is_a_crash_after_the_grace(stale: Path) -> None:
    client = RuntimeClient(str(stale), refused_grace_s=0.5)
    started = time.monotonic()
    with pytest.raises(RuntimeGoneError, match=r"refused connections for 0\.5s"):
        await _collect(client)
    assert time.monotonic() - started >= 0.5


async def test_a_runtime_that_binds_again_within_the_grace_serves_the_waiting_call(stale: Path) -> None:
    client = RuntimeClient(str(stale), refused_grace_s=30)
    call = asyncio.create_task(_collect(client))
    await asyncio.sleep(0.3)
    assert not call.done(), "the call waits while the socket refuses"
    # the restarted runtime's socket takes the old file's place (atomically, so it is never missing)
    fresh = stale / "fresh.sock"
    server = await asyncio.start_unix_server(_answer_once, path=str(fresh))
    fresh.rename(stale / protocol.SOCKET_NAME)
    try:
        (item,) = await asyncio.wait_for(call, 10)
    finally:
        server.close()
    assert item["payload"] == {"n": 1} and item["route"]["current"] == 1


async def test_a_socket_file_that_is_gone_is_a_crash_at_once(socket_dir: Path) -> None:
    (socket_dir / protocol.READY_FILE).write_text("ready\n")
    client = RuntimeClient(str(socket_dir), refused_grace_s=30)
    started = time.monotonic()
    with pytest.raises(RuntimeGoneError, match="missing"):
        await _collect(client)
    assert time.monotonic() - started < 1
