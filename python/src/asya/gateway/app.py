"""The gateway's ASGI app: route table, lifespan, health, OpenAPI, and MCP at ``/mcp``.

``ROUTES`` is the REST surface (each one described in ``openapi.py``); the MCP
endpoint is added beside it in ``create_app``, as a plain ASGI route so that
``/mcp`` itself (not only ``/mcp/``) reaches the SDK. ``POST /mcp/tools/call``
is REST and comes first. Tools are loaded before anything starts: a broken
tool file fails ``create_app``, naming the file and the field.

Job ids may contain ``/`` (injected envelopes carry producers' ids; the
reporter percent-encodes them, and the server decodes the path before routing),
so the id segment is a ``path`` parameter and the routes with a suffix come
first.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asya.gateway import control, jobs_api, mcp_server, mcp_tasks, metrics, openapi, reports, tools
from asya.gateway.context import Gateway, open_gateway
from asya.gateway.settings import GatewaySettings
from asya.gateway.store import DATABASE_DOWN

log = logging.getLogger("asya.gateway")


def _version() -> str:
    try:
        return importlib.metadata.version("asya")
    except importlib.metadata.PackageNotFoundError:
        return "0"


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    hub = request.app.state.gateway.hub
    if not hub.connected.is_set():
        return JSONResponse({"status": "reconnecting to PostgreSQL"}, 503)
    return JSONResponse({"status": "ready"})


async def database_down(_request: Request, exc: Exception) -> Response:
    """PostgreSQL down or restarting: a 503 that clients and the reporter retry, never a 500."""
    log.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {"error": "unavailable", "message": "the job database is unavailable; retry"}, 503, headers={"Retry-After": "1"}
    )


async def unstorable(_request: Request, exc: Exception) -> Response:
    """A value PostgreSQL refuses (a NUL character or lone surrogate in JSON or an id, a number out of range)."""
    return JSONResponse(
        {
            "error": "invalid request",
            "message": f"the request holds a value the job database cannot store ({getattr(exc, 'message', exc)}). "
            "Text may not contain "
            "NUL (\\u0000) characters or unpaired surrogates; integers must fit in 64 bits.",
        },
        422,
    )


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/metrics", metrics.metrics_view, methods=["GET"]),
    Route("/mcp/tools/call", jobs_api.call_tool, methods=["POST"]),
    Route("/jobs", jobs_api.create_job, methods=["POST"]),
    Route("/jobs", jobs_api.list_jobs, methods=["GET"]),
    Route("/jobs/{id:path}/stream", jobs_api.stream_job, methods=["GET"]),
    Route("/jobs/{id:path}/cancel", jobs_api.cancel_job, methods=["POST"]),
    Route("/jobs/{id:path}/progress", reports.progress, methods=["POST"]),
    Route("/jobs/{id:path}/final", reports.final, methods=["POST"]),
    Route("/jobs/{id:path}", jobs_api.get_job, methods=["GET"], name="get_job"),
    Route("/internal/cancellations", control.cancellations, methods=["GET"]),
]


MCP_PATH = "/mcp"


def create_app(settings: GatewaySettings) -> Starlette:
    tool_set = tools.load(settings.tool_paths)

    def state() -> tuple[Gateway, dict[str, tools.Tool]]:
        return app.state.gateway, tool_set

    server = mcp_server.create_server(state, _version())
    mcp_tasks.install(server, state)
    manager = mcp_server.session_manager(server)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_gateway(settings) as gateway, manager.run():
            app.state.gateway = gateway
            yield

    routes = [*ROUTES, Route(MCP_PATH, mcp_server.McpEndpoint(manager), name="mcp")]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            **{exc: database_down for exc in DATABASE_DOWN},
            asyncpg.DataError: unstorable,
        },
    )
    app.state.openapi = openapi.document(_version())
    app.state.tools = tool_set
    if tool_set:
        log.info("serving %d tools: %s", len(tool_set), ", ".join(sorted(tool_set)))
    return app
