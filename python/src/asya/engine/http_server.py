"""A small HTTP/1.1 server on stdlib asyncio, for the probe and metrics endpoints of a consumer process.

``serving.start_http`` puts ``/healthz``, ``/readyz`` and ``/metrics`` on it. It
stands in for aiohttp's web server because importing aiohttp cost every sidecar
about 10 MiB of resident memory for three tiny GET routes (docs/benchmarks.md,
"Sidecar memory"). It speaks what kubelet probes and Prometheus scrapes send, and
refuses everything else with a status instead of a traceback:

- GET and HEAD; another method on a known path gets 405, any unknown path 404;
- persistent connections by the HTTP/1.1 rules (``Connection: close`` ends one;
  HTTP/1.0 keeps one only when asked with ``Connection: keep-alive``); pipelined
  requests are answered in order;
- bounded clients: a head over ``max_head_bytes`` gets 431 (414 when the request
  line alone is too long), a head not complete within ``head_timeout_s`` gets 408,
  a keep-alive connection idle for ``idle_timeout_s`` is closed, a body (these
  routes take none) over ``max_body_bytes`` gets 413 and a chunked one 501, and
  past ``max_connections`` open connections new ones are closed at once;
- anything unparseable gets 400. After any such refusal the connection is closed,
  since where the next request would begin can no longer be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import http
import logging
import re
from collections.abc import Callable, Mapping

log = logging.getLogger("asya.engine.http")

TEXT = "text/plain; charset=utf-8"
_METHODS = frozenset({"GET", "HEAD"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_MAX_HEADERS = 100


@dataclasses.dataclass(frozen=True)
class Response:
    """What a route answers: status, body and its content type (plus any extra headers)."""

    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode())


Route = Callable[[], Response]
"""Answers a GET of one path; called in the event loop, so it must not block."""


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """How much of this process one client may hold."""

    max_head_bytes: int = 8192
    """Request line plus headers, bytes; beyond it 431 (414 for an overlong request line)."""
    max_body_bytes: int = 65536
    """A request body is read and discarded up to this many bytes; beyond it 413."""
    head_timeout_s: float = 10.0
    """Seconds a new connection has for its whole request head (and one started on a kept one)."""
    idle_timeout_s: float = 75.0
    """Seconds a kept-alive connection may wait for its next request (aiohttp's default)."""
    max_connections: int = 64
    """Open connections at once; kubelet and Prometheus need a handful."""


class _Refused(Exception):
    """The request cannot be served; answer ``status`` and close the connection."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclasses.dataclass(frozen=True)
class _Request:
    method: str
    path: str
    http10: bool
    keep_alive: bool


class HttpServer:
    """Serves ``routes`` (path -> ``Route``) until ``cleanup()``."""

    def __init__(self, routes: Mapping[str, Route], limits: HttpLimits | None = None) -> None:
        self.routes = dict(routes)
        self.limits = limits or HttpLimits()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[object]] = set()

    async def start(self, host: str, port: int) -> None:
        # the reader's limit makes readuntil() refuse a line longer than the whole head may be
        self._server = await asyncio.start_server(self._serve, host, port, limit=self.limits.max_head_bytes)

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def cleanup(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    # --- one connection ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= self.limits.max_connections:
            writer.close()
            return
        self._connections.add(task)
        try:
            kept = False
            while True:
                try:
                    request = await self._read(reader, kept)
                except _Refused as refusal:
                    await _write(writer, Response.text(refusal.status, str(refusal)), head_only=False, closing=True)
                    break
                if request is None:
                    break
                await _write(
                    writer,
                    self._answer(request),
                    head_only=request.method == "HEAD",
                    closing=not request.keep_alive,
                    http10=request.http10,
                )
                if not request.keep_alive:
                    break
                kept = True
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, request: _Request) -> Response:
        route = self.routes.get(request.path)
        if route is None:
            return Response.text(404, "404: Not Found")
        if request.method not in _METHODS:
            return Response(405, b"405: Method Not Allowed", headers=(("Allow", "GET, HEAD"),))
        try:
            return route()
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return Response.text(500, "500: Internal Server Error")

    async def _read(self, reader: asyncio.StreamReader, kept: bool) -> _Request | None:
        """The next request on the connection, None when the client is done (or idle too long)."""
        lim = self.limits
        loop = asyncio.get_running_loop()
        began = False
        try:
            async with asyncio.timeout(lim.idle_timeout_s if kept else lim.head_timeout_s) as deadline:
                budget = lim.max_head_bytes
                line = b""
                while not line.strip():  # RFC 9112 2.2: empty lines before a request line are ignored
                    line = await _line(reader, budget, 414)
                    if not line:
                        return None
                    budget -= len(line)
                # the request began: the rest of the head gets head_timeout_s from now
                began = True
                deadline.reschedule(loop.time() + lim.head_timeout_s)
                method, path, http10 = _request_line(line)
                fields: dict[str, str] = {}
                for _ in range(_MAX_HEADERS + 1):
                    line = await _line(reader, budget, 431)
                    if not line:
                        raise asyncio.IncompleteReadError(b"", None)  # gone mid-head
                    budget -= len(line)
                    if line in (b"\r\n", b"\n"):
                        break
                    _header(line, fields)
                else:
                    raise _Refused(431, "too many header fields")
                await self._skip_body(reader, fields)
        except TimeoutError:
            if not began:  # nothing asked (idle keep-alive, or a silent new connection): just close
                return None
            raise _Refused(408, "request not complete in time") from None
        tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
        keep = "keep-alive" in tokens if http10 else "close" not in tokens
        return _Request(method, path, http10, keep and self._server is not None and self._server.is_serving())

    async def _skip_body(self, reader: asyncio.StreamReader, fields: dict[str, str]) -> None:
        if "transfer-encoding" in fields:
            raise _Refused(501, "request bodies with a transfer coding are not supported")
        length = fields.get("content-length")
        if length is None:
            return
        if not length.isdigit():
            raise _Refused(400, "bad Content-Length")
        if int(length) > self.limits.max_body_bytes:
            raise _Refused(413, "request body too large")
        await reader.readexactly(int(length))


async def _line(reader: asyncio.StreamReader, budget: int, too_long: int) -> bytes:
    """One line with its ending; b"" at a clean end of stream. ``too_long`` is the status past ``budget``."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise _Refused(400, "incomplete request") from None
        return b""
    except asyncio.LimitOverrunError:
        raise _Refused(too_long, "request head too large") from None
    if len(line) > budget:
        raise _Refused(too_long, "request head too large")
    return line


def _request_line(line: bytes) -> tuple[str, str, bool]:
    """(method, path, is HTTP/1.0) of ``METHOD SP target SP HTTP/x.y``."""
    parts = line.rstrip(b"\r\n").split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise _Refused(400, "malformed request line")
    method, target, version = parts
    found = _VERSION.fullmatch(version)
    if found is None:
        raise _Refused(400, "malformed HTTP version")
    if found.group(1) != b"1":
        raise _Refused(505, "only HTTP/1.x is served")
    if target.startswith(b"/"):
        path = target.split(b"?", 1)[0]
    elif target.startswith((b"http://", b"https://")):  # absolute form (RFC 9112 3.2.2)
        rest = target.split(b"://", 1)[1]
        cut = rest.find(b"/")
        path = rest[cut:].split(b"?", 1)[0] if cut >= 0 else b"/"
    else:
        raise _Refused(400, "malformed request target")
    if any(b <= 0x20 or b >= 0x7F for b in path):
        raise _Refused(400, "malformed request target")
    return method.decode(), path.decode(), found.group(2) == b"0"


def _header(line: bytes, fields: dict[str, str]) -> None:
    """Add one ``name: value`` field; repeated names are joined with commas (RFC 9110 5.3)."""
    name, colon, value = line.rstrip(b"\r\n").partition(b":")
    if not colon or not _TOKEN.fullmatch(name):  # also refuses obsolete line folding (leading space)
        raise _Refused(400, "malformed header field")
    key = name.decode().lower()
    text = value.strip(b" \t").decode("latin-1")
    if key == "content-length" and key in fields and fields[key] != text:
        raise _Refused(400, "conflicting Content-Length")
    fields[key] = f"{fields[key]}, {text}" if key in fields and key != "content-length" else text


async def _write(
    writer: asyncio.StreamWriter, response: Response, *, head_only: bool, closing: bool, http10: bool = False
) -> None:
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    lines = [
        f"HTTP/1.1 {response.status} {phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    if closing:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    writer.write(head if head_only else head + response.body)
    await writer.drain()


__all__ = ["HttpLimits", "HttpServer", "Response", "Route"]
