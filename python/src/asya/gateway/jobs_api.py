"""The client REST endpoints: create, read, list, stream and cancel jobs, and call a tool.

``POST /jobs`` takes either ``{"route": {"actors": [...], "metadata"?: {...}},
"payload": ..., "headers"?: {...}}`` or ``{"tool": NAME, "params": {...}}``
(a tool from the gateway's tool configuration); either may add ``deadline`` or
``timeout_s``. ``POST /mcp/tools/call`` is the tool form under the path the
onboarding guide uses, answering with a short receipt. Both go through
``submit.py``, as MCP ``tools/call`` does.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asya.gateway import submit
from asya.gateway.auth import Audience, requires
from asya.gateway.context import Gateway
from asya.gateway.store import STATUSES
from asya.gateway.streaming import stream_response
from asya.gateway.tools import Tool

MAX_LIMIT = 200
MAX_TOOL_NAME = 200


def invalid(field: str, message: str, status: int = 422) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "field": field, "message": message}, status)


def not_found(job_id: str) -> JSONResponse:
    return JSONResponse({"error": "not found", "message": f"no job {job_id!r}"}, 404)


def tools_of(request: Request) -> dict[str, Tool]:
    tools: dict[str, Tool] = request.app.state.tools
    return tools


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, ValueError):
        raise submit.invalid("body", "must be a JSON document") from None


@requires(Audience.CLIENT)
async def create_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        body = await _json_body(request)
        if isinstance(body, dict) and "tool" in body:
            job_request = submit.from_tool(tools_of(request), body)
        else:
            job_request = submit.from_route_body(body)
        job, created = await submit.submit(gw, job_request, request.headers.get("idempotency-key"))
    except submit.Rejected as exc:
        return JSONResponse(exc.body(), exc.status)
    job["links"] = submit.links(request, job["id"])
    return JSONResponse(job, 201 if created else 200, headers={"Location": job["links"]["self"]})


@requires(Audience.CLIENT)
async def call_tool(request: Request) -> Response:
    """``POST /mcp/tools/call``: ``{"tool", "params"}`` → 201 with the job id, status and stream URL."""
    gw: Gateway = request.app.state.gateway
    try:
        body = await _json_body(request)
        job_request = submit.from_tool(tools_of(request), body)
        job, created = await submit.submit(gw, job_request, request.headers.get("idempotency-key"))
    except submit.Rejected as exc:
        return JSONResponse(exc.body(), exc.status)
    answer = submit.receipt(request, job)
    return JSONResponse(answer, 201 if created else 200, headers={"Location": answer["status_url"]})


@requires(Audience.CLIENT)
async def get_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    job_id = request.path_params["id"]
    return _job_or_404(request, job_id, await gw.store.get(job_id))


@requires(Audience.CLIENT)
async def list_jobs(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        return invalid("status", f"one of {', '.join(sorted(STATUSES))}")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        return invalid("limit", "must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return invalid("limit", f"must be between 1 and {MAX_LIMIT}")
    cursor: int | None = None
    if q.get("cursor"):
        try:
            cursor = int(q["cursor"])
        except ValueError:
            return invalid("cursor", "not a cursor this gateway returned")
        if not 0 < cursor < 2**63:
            return invalid("cursor", "not a cursor this gateway returned")
    tool = q.get("tool") or None
    if tool is not None and len(tool) > MAX_TOOL_NAME:
        return invalid("tool", f"at most {MAX_TOOL_NAME} characters")
    jobs, next_cursor = await gw.store.page(status=status, limit=limit, cursor=cursor, tool=tool)
    return JSONResponse({"jobs": jobs, "next_cursor": str(next_cursor) if next_cursor is not None else None})


@requires(Audience.CLIENT)
async def stream_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    return await stream_response(request, request.path_params["id"], gw.store, gw.hub, gw.settings.keepalive_s)


@requires(Audience.CLIENT)
async def cancel_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    job_id = request.path_params["id"]
    return _job_or_404(request, job_id, await gw.store.cancel(job_id))


def _job_or_404(request: Request, job_id: str, job: dict[str, Any] | None) -> Response:
    if job is None:
        return not_found(job_id)
    job["links"] = submit.links(request, job_id)
    return JSONResponse(job)
