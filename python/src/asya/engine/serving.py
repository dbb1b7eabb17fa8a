"""``/healthz``, ``/readyz`` and ``/metrics`` of a consumer process.

Liveness and readiness are asked of the engine, which combines its own state
(consuming, shutting down) with the processor's (runtime reachable, calls
abandoned after timeouts): 200 or 503, with the reason as the body. They are
served by ``http_server`` (stdlib asyncio), not aiohttp, which would cost every
sidecar about 10 MiB of resident memory for these three routes.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from asya.engine.http_server import HttpServer, Response
from asya.engine.metrics import Metrics

Probe = Callable[[], tuple[bool, str]]


async def start_http(host: str, port: int, metrics: Metrics, healthy: Probe, ready: Probe) -> HttpServer:
    """Serve the probes and metrics on ``host:port``; the caller stops it with ``cleanup()``."""

    def probe(check: Probe) -> Callable[[], Response]:
        def answer() -> Response:
            ok, why = check()
            return Response.text(200 if ok else 503, why)

        return answer

    def scrape() -> Response:
        return Response(200, metrics.exposition(), CONTENT_TYPE_LATEST)

    server = HttpServer({"/healthz": probe(healthy), "/readyz": probe(ready), "/metrics": scrape})
    await server.start(host, port)
    return server
