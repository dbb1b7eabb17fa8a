"""The probe/metrics HTTP server (``asya.engine.http_server``) on a real socket: routing, persistent
connections, and clients that send too much, too slowly, or nonsense.

Each test starts the server on a free loopback port in this event loop and talks to it with
raw bytes (to send exactly what a broken client sends) or with ``http.client`` in a thread
(what a well-behaved HTTP/1.1 client does with keep-alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from asya.engine import serving
from asya.engine.http_server import HttpLimits, HttpServer, Response
from asya.engine.metrics import Metrics

pytestmark = [pytest.mark.timeout(30)]

READ_S = 5.0
"""Deadline for any answer or close the server owes us."""


def _boom() -> Response:
    raise RuntimeError("probe broke")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    s = HttpServer(
        {"/healthz": lambda: Response.text(200, "ok"), "/boom": _boom},
        # idle connections stay far longer than READ_S, so a prompt close is the server's choice
        HttpLimits(max_head_bytes=1024, max_body_bytes=16, head_timeout_s=0.5, idle_timeout_s=60, max_connections=3),
    )
    await s.start("127.0.0.1", 0)
    yield s
    await s.cleanup()


async def _connect(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


@contextlib.asynccontextmanager
async def _connection(server: HttpServer) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await _connect(server)
    try:
        yield reader, writer
    finally:
        writer.close()


async def _response(*args: Any) -> tuple[int, dict[str, str], bytes]:
    """One response from ``([already read,] reader)``: status, headers (lower-case names), body by Content-Length."""
    *start, reader = args
    head = b"".join(start) + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_S)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), READ_S)
    return int(status_line.split(" ")[1]), fields, body


async def _closed(reader: asyncio.StreamReader, nothing: bool = False) -> bool:
    """True when the server closes the connection within the deadline (with ``nothing``: without a byte sent)."""
    try:
        rest = await asyncio.wait_for(reader.read(), READ_S)
    except ConnectionError:
        return True
    return rest == b"" if nothing else reader.at_eof()


async def _ask_once(server: HttpServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read one response, and check the server closed the connection after it."""
    async with _connection(server) as (reader, writer):
        writer.write(raw)
        await writer.drain()
        answer = await _response(reader)
        assert await _closed(reader), "the server kept a connection it should have closed"
        return answer


async def test_unknown_path_is_404_and_other_methods_405(server: HttpServer) -> None:
    status, _, body = await _ask_once(server, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, body) == (404, b"404: Not Found")
    status, fields, _ = await _ask_once(server, b"POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 405 and fields["allow"] == "GET, HEAD"


async def test_head_answers_the_length_without_a_body(server: HttpServer) -> None:
    async with _connection(server) as (reader, writer):
        writer.write(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_S)
        assert b" 200 " in head and b"Content-Length: 2\r\n" in head
        # no body after the HEAD answer: the next bytes are the GET's status line
        assert await asyncio.wait_for(reader.readexactly(9), READ_S) == b"HTTP/1.1 "
        status, _, body = await _response(b"HTTP/1.1 ", reader)
        assert (status, body) == (200, b"ok")


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz HTTP/1.1 extra\r\n\r\n",
        b"GET /healthz HTTX/1.1\r\n\r\n",
        b"G(T /healthz HTTP/1.1\r\n\r\n",
        b"GET healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n folded: value\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    ],
    ids=[
        "no-parts",
        "no-version",
        "four-parts",
        "bad-version",
        "bad-method",
        "bad-target",
        "header-no-colon",
        "obs-fold",
        "bad-length",
        "two-lengths",
    ],
)
async def test_malformed_request_is_400_and_closed(server: HttpServer, raw: bytes) -> None:
    status, fields, _ = await _ask_once(server, raw)
    assert status == 400
    assert fields["connection"] == "close"


async def test_http2_preface_is_505(server: HttpServer) -> None:
    status, _, _ = await _ask_once(server, b"GET /healthz HTTP/2.0\r\n\r\n")
    assert status == 505


async def test_two_requests_on_one_connection_then_close(server: HttpServer) -> None:
    async with _connection(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, fields, body = await _response(reader)
        assert (status, body) == (200, b"ok") and "connection" not in fields
        writer.write(b"GET /healthz?probe=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, fields, body = await _response(reader)
        assert (status, body, fields["connection"]) == (200, b"ok", "close")
        assert await _closed(reader)


async def test_pipelined_requests_are_answered_in_order(server: HttpServer) -> None:
    async with _connection(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        assert [(await _response(reader))[0] for _ in range(3)] == [200, 404, 200]


async def test_http10_closes_unless_asked_to_keep_alive(server: HttpServer) -> None:
    status, fields, _ = await _ask_once(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert (status, fields["connection"]) == (200, "close")
    async with _connection(server) as (reader, writer):
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            status, fields, _ = await _response(reader)
            assert (status, fields["connection"]) == (200, "keep-alive")


async def test_http_client_keeps_one_connection_for_two_requests(server: HttpServer) -> None:
    def two_gets() -> list[tuple[int, bytes, object]]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=READ_S)
        try:
            out = []
            for path in ("/healthz", "/nope"):
                conn.request("GET", path)
                resp = conn.getresponse()
                out.append((resp.status, resp.read(), conn.sock))
            return out
        finally:
            conn.close()

    (s1, b1, sock1), (s2, b2, sock2) = await asyncio.to_thread(two_gets)
    assert (s1, b1, s2, b2) == (200, b"ok", 404, b"404: Not Found")
    assert sock1 is sock2, "http.client opened a second connection: the first was not kept alive"


async def test_oversized_head_is_refused(server: HttpServer) -> None:
    status, _, _ = await _ask_once(server, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414
    many = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 50) for i in range(40))
    status, _, _ = await _ask_once(server, b"GET /healthz HTTP/1.1\r\n" + many + b"\r\n")
    assert status == 431


async def test_request_bodies_are_bounded(server: HttpServer) -> None:
    status, _, _ = await _ask_once(server, b"GET /healthz HTTP/1.1\r\nContent-Length: 17\r\n\r\n" + b"x" * 17)
    assert status == 413
    status, _, _ = await _ask_once(server, b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status == 501
    # a small body is read and skipped, so the next request on the connection is parsed right
    async with _connection(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /healthz HTTP/1.1\r\n\r\n")
        assert [(await _response(reader))[0] for _ in range(2)] == [200, 200]


async def test_slow_request_gets_408_and_is_closed(server: HttpServer) -> None:
    async with _connection(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        await writer.drain()
        status, fields, _ = await _response(reader)
        assert (status, fields["connection"]) == (408, "close")
        assert await _closed(reader)


async def test_idle_and_silent_connections_are_closed() -> None:
    server = HttpServer(
        {"/healthz": lambda: Response.text(200, "ok")}, HttpLimits(head_timeout_s=0.5, idle_timeout_s=0.5)
    )
    await server.start("127.0.0.1", 0)
    try:
        async with _connection(server) as (reader, writer):  # says nothing at all
            assert await _closed(reader)
        async with _connection(server) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert (await _response(reader))[0] == 200
            assert await _closed(reader)  # kept alive, then idle past idle_timeout_s
    finally:
        await server.cleanup()


async def test_a_failing_route_is_500_and_the_server_goes_on(server: HttpServer) -> None:
    async with _connection(server) as (reader, writer):
        writer.write(b"GET /boom HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        assert [(await _response(reader))[0] for _ in range(2)] == [500, 200]


async def test_connections_past_the_limit_are_closed(server: HttpServer) -> None:
    held = [await _connect(server) for _ in range(3)]
    try:
        for reader, writer in held:  # all three are served (and so counted)
            writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert (await _response(reader))[0] == 200
        async with _connection(server) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            assert await _closed(reader, nothing=True), "a connection past the limit was served"
    finally:
        for _, writer in held:
            writer.close()


async def test_cleanup_closes_kept_connections() -> None:
    s = HttpServer({"/healthz": lambda: Response.text(200, "ok")})
    await s.start("127.0.0.1", 0)
    reader, writer = await _connect(s)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert (await _response(reader))[0] == 200
        await asyncio.wait_for(s.cleanup(), READ_S)
        assert await _closed(reader)
    finally:
        writer.close()


async def test_probes_say_why_and_metrics_carry_the_prometheus_type() -> None:
    metrics = Metrics("probe-test")
    metrics.received.inc()
    s = await serving.start_http("127.0.0.1", 0, metrics, lambda: (True, "ok"), lambda: (False, "not consuming yet"))
    try:
        status, fields, body = await _ask_once(s, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert (status, body, fields["content-type"]) == (200, b"ok", "text/plain; charset=utf-8")
        status, fields, body = await _ask_once(s, b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert (status, body, fields["content-type"]) == (503, b"not consuming yet", "text/plain; charset=utf-8")
        status, fields, body = await _ask_once(s, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert status == 200 and fields["content-type"] == CONTENT_TYPE_LATEST
        assert b'asya_sidecar_messages_received_total{actor="probe-test"} 1.0' in body
    finally:
        await s.cleanup()
