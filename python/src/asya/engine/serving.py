"""``/healthz``, ``/readyz`` and ``/metrics`` of a consumer process (aiohttp).

Liveness and readiness are asked of the engine, which combines its own state
(consuming, shutting down) with the processor's (runtime reachable, calls
abandoned after timeouts).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from asya.engine.metrics import Metrics

Probe = Callable[[], tuple[bool, str]]


async def start_http(host: str, port: int, metrics: Metrics, healthy: Probe, ready: Probe) -> web.AppRunner:
    """Serve the probes and metrics on ``host:port``; returns the runner so the caller can stop it."""

    def probe(check: Probe) -> Callable[[web.Request], object]:
        async def view(_: web.Request) -> web.Response:
            ok, why = check()
            return web.Response(status=200 if ok else 503, text=why)

        return view

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes(
        [web.get("/healthz", probe(healthy)), web.get("/readyz", probe(ready)), web.get("/metrics", metrics_view)]  # type: ignore[arg-type]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
