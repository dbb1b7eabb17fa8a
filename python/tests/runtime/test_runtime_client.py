"""The sidecar's client against the runtime: the hello (only when advertised, one-key frames, 0.1.x
fallback) and an envelope over the frame limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from runtime.conftest import Launcher, envelope

from asya.contracts import protocol
from asya.sidecar.runtime_client import RuntimeClient, encode_frame, read_frame


async def _collect(client: RuntimeClient, env: dict[str, Any]) -> list[dict[str, Any]]:
    return [item async for item in client.call(json.dumps(env).encode())]


async def test_client_negotiates_stream_and_an_asya_hello_field_stays_data(runtime: Launcher, socket_dir: Path) -> None:
    runtime("add_step", mode="envelope")
    client = RuntimeClient(str(socket_dir))
    await client.wait_ready(10)
    assert client.features == {"stream", "reuse"}
    for _ in range(2):  # the second call reuses the pooled, negotiated connection
        (item,) = await _collect(client, envelope({"extra": "c"}, asya_hello={"features": []}))
        assert item["asya_hello"] == {"features": []}
        assert item["route"]["actors"] == ["a", "b", "c"]
    assert len(client._idle) == 1 and client._idle[0].stream
    client.close()


async def test_envelope_over_the_frame_limit_comes_back_as_msg_parsing_error(
    runtime: Launcher, socket_dir: Path
) -> None:
    # The sidecar writes the whole frame before reading: the runtime must take it all, then answer.
    runtime("echo")
    client = RuntimeClient(str(socket_dir))
    await client.wait_ready(10)
    body = b'{"id":"e-huge","payload":"' + b"x" * protocol.MAX_FRAME_BYTES + b'"}'
    (item,) = [item async for item in client.call(body)]
    assert item["error"] == "msg_parsing_error" and item["details"]["type"] == "FrameTooLarge"
    assert len(client._idle) == 1  # the connection stays in step and goes back to the pool
    (ok,) = await _collect(client, envelope({"after": 1}))
    assert ok["payload"] == {"after": 1}
    client.close()


class PlainRuntime:
    """A stand-in for an Asya 0.1.x runtime: one request, one JSON array, then close."""

    def __init__(self, socket_dir: Path, ready_text: str) -> None:
        self.socket_dir = socket_dir
        self.ready_text = ready_text
        self.frames: list[Any] = []
        self.server: asyncio.AbstractServer | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await read_frame(reader))
            self.frames.append(request)
            if "payload" in request:
                answer = [{"payload": request["payload"], "route": request["route"]}]
            else:
                answer = [{"error": "msg_parsing_error", "details": {"message": "no payload", "type": "ValueError"}}]
            writer.write(encode_frame(json.dumps(answer).encode()))
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> PlainRuntime:
        path = self.socket_dir / protocol.SOCKET_NAME
        self.server = await asyncio.start_unix_server(self.serve, path=str(path))
        (self.socket_dir / protocol.READY_FILE).write_text(self.ready_text)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_no_hello_when_the_ready_file_advertises_nothing(socket_dir: Path) -> None:
    async with PlainRuntime(socket_dir, "ready\n") as fake:
        client = RuntimeClient(str(socket_dir))
        await client.wait_ready(10)
        assert client.features == frozenset()
        (item,) = await _collect(client, envelope({"n": 1}))
        assert item["payload"] == {"n": 1}
        assert all("payload" in f for f in fake.frames), fake.frames  # the probe and the call: no hello


async def test_runtime_that_answers_the_hello_like_0_1_is_spoken_to_plainly(socket_dir: Path) -> None:
    ready = json.dumps({"protocol": 1, "features": ["stream", "reuse"]})
    async with PlainRuntime(socket_dir, ready) as fake:
        client = RuntimeClient(str(socket_dir))
        await client.wait_ready(10)
        (item,) = await _collect(client, envelope({"n": 2}))
        assert item["payload"] == {"n": 2}
        assert client.features == frozenset()
        hello = fake.frames[0]
        assert hello == {"asya_hello": {"protocol": 1, "features": ["reuse", "stream"]}}
        assert all("payload" in f for f in fake.frames[1:]), fake.frames
