"""MCP at ``/mcp``: the tool configuration as MCP tools, on the official ``mcp`` SDK (Streamable HTTP).

``tools/list`` serves the configured tools; ``tools/call`` checks the
arguments against the tool's schema and creates the job through ``submit.py``,
exactly as REST does. A call without a progress token answers at once with
the job id and where to follow it. A call *with* a progress token stays open:
MCP ties progress notifications to a request in flight, so the gateway sends
one per job event (read from the job's event table, woken by the event hub)
and answers when the job has ended, with its result. A client that goes away
or cancels the request ends that wait; the job runs on.

The SDK's session manager has its own lifespan; ``app.py`` runs it inside the
gateway's. ``McpEndpoint`` checks the client bearer token before the SDK sees
the request, the same check as REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from asya.gateway import auth, submit
from asya.gateway.context import Gateway
from asya.gateway.store import DATABASE_DOWN, FINAL_EVENT
from asya.gateway.tools import Tool

log = logging.getLogger("asya.gateway.mcp")

SERVER_NAME = "asya-gateway"
RECHECK_S = 30.0
"""Re-read the job's events this often without a notification (NOTIFY is what normally wakes the wait)."""

State = Callable[[], tuple[Gateway, Mapping[str, Tool]]]
"""Gives the handlers the running gateway and the tools (set in the app's lifespan)."""


def request_of(ctx: ServerRequestContext[Any, Any]) -> Request | None:
    return ctx.request if isinstance(ctx.request, Request) else None


def _progress_token(ctx: ServerRequestContext[Any, Any]) -> str | int | None:
    meta: Mapping[str, Any] = ctx.meta or {}
    token = meta.get("progress_token", meta.get("progressToken"))
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None


def _text(data: Mapping[str, Any]) -> list[types.ContentBlock]:
    return [types.TextContent(text=json.dumps(data, default=str))]


def create_server(state: State, version: str) -> Server[Any]:
    async def list_tools(
        _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        _, tools = state()
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=dict(t.parameters),
                    # 2025-11-25 tasks (mcp_tasks.py); the 2026 wire drops the field
                    execution=types.ToolExecution(task_support="optional"),
                )
                for t in tools.values()
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        gw, tools = state()
        receipt = await create_job(gw, tools, params.name, params.arguments, request_of(ctx), ctx.meta)
        token = _progress_token(ctx)
        if token is None:
            return types.CallToolResult(content=_text(receipt), structured_content=receipt)
        return tool_result(receipt, await _follow(gw, ctx, token, receipt))

    return Server(SERVER_NAME, version=version, on_list_tools=list_tools, on_call_tool=call_tool)


META_DEADLINE = "asya/deadline"
META_TIMEOUT_S = "asya/timeout_s"
"""``_meta`` keys of a ``tools/call`` that give the job a deadline, as ``deadline``/``timeout_s`` do over REST."""


async def create_job(
    gw: Gateway,
    tools: Mapping[str, Tool],
    name: str,
    arguments: object,
    request: Request | None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The job of one tool call, through ``submit.py``; its receipt. Refusals are JSON-RPC errors naming the field."""
    body: dict[str, Any] = {"tool": name, "arguments": {} if arguments is None else arguments}
    for key, field in ((META_DEADLINE, "deadline"), (META_TIMEOUT_S, "timeout_s")):
        if meta and key in meta:
            body[field] = meta[key]
    try:
        job_request = submit.from_tool(tools, body, params_field="arguments")
        job, _created = await submit.submit(gw, job_request, None)
    except submit.Rejected as exc:
        # the MCP spec answers an unknown tool and bad arguments alike with "invalid params"
        code = INVALID_PARAMS if exc.status in (404, 422) else INTERNAL_ERROR
        if exc.field in ("deadline", "timeout_s"):
            exc.field = f"_meta.asya/{exc.field}"
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        raise MCPError(code, message, data=exc.body()) from None
    return submit.receipt(request, job)


def tool_result(receipt: Mapping[str, Any], final: Mapping[str, Any]) -> types.CallToolResult:
    """What a tool call that waited for its job answers: the receipt with the job's outcome."""
    answer = {**receipt, **final}
    return types.CallToolResult(
        content=_text(answer), structured_content=answer, is_error=answer["status"] != "succeeded"
    )


async def outcome(gw: Gateway, job_id: str) -> dict[str, Any]:
    """Status, result and error of a job that has ended."""
    job = await gw.store.get(job_id)
    assert job is not None
    out: dict[str, Any] = {"status": job["status"], "result": job["result"]}
    if job["error"] is not None:
        out["error"] = job["error"]
    return out


async def wait_end(gw: Gateway, job_id: str) -> dict[str, Any]:
    """Wait (on the job's events) until it has ended; its outcome."""
    async for kind, _data in events(gw, job_id):
        if kind == FINAL_EVENT:
            break
    return await outcome(gw, job_id)


Progress = tuple[float, float | None, str]
"""One MCP progress notification: (progress, total, message)."""


class ProgressMeter:
    """Job events → MCP progress notifications.

    ``progress`` counts the actors done and ``total`` is actors + 1, the last unit
    being the job's end, so the end always moves the bar. MCP requires progress to
    increase, so an event that does not complete a new step (a retry, a fan-out
    sibling at the same step) moves it half way to the next whole step: its
    message still reaches the client and the next step still counts in full.
    """

    def __init__(self) -> None:
        self.sent = 0.0
        self.total: float | None = None

    def feed(self, kind: str, data: Mapping[str, Any]) -> Progress | None:
        if kind == "created":
            return None  # the caller announced the job already
        steps = data.get("steps")
        if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
            self.total = float(steps + 1)
        if kind == FINAL_EVENT:
            return self._emit(max(self.total or 0.0, self.sent + 1), f"job {data.get('status')}")
        step = data.get("step")
        progress = (
            float(step) + 1 if isinstance(step, int) and not isinstance(step, bool) and kind != "retrying" else 0.0
        )
        if progress <= self.sent:
            progress = self.sent + (math.floor(self.sent) + 1 - self.sent) / 2
        return self._emit(progress, _describe(kind, data))

    def _emit(self, progress: float, message: str) -> Progress:
        self.sent = progress
        return progress, self.total, message


async def _follow(
    gw: Gateway, ctx: ServerRequestContext[Any, Any], token: str | int, receipt: Mapping[str, Any]
) -> dict[str, Any]:
    """Send a progress notification per job event until the job ends; the job's outcome."""
    job_id = receipt["job_id"]
    # on the request's own stream: MCP ties progress to the request in flight
    request_id = None if ctx.request_id is None else str(ctx.request_id)
    meter = ProgressMeter()

    async def notify(progress: float, total: float | None, message: str) -> None:
        await ctx.session.send_progress_notification(token, progress, total, message, related_request_id=request_id)

    await notify(0, None, f"job {job_id} queued; stream: {receipt['stream_url']}")
    async for kind, data in events(gw, job_id):
        update = meter.feed(kind, data)
        if update is not None:
            await notify(*update)
        if kind == FINAL_EVENT:
            break
    return await outcome(gw, job_id)


def _describe(kind: str, data: Mapping[str, Any]) -> str:
    actor = data.get("actor", "?")
    if kind == "retrying":
        return f"{actor} failed; retry scheduled"
    step, steps = data.get("step"), data.get("steps")
    where = f" (step {step + 1}/{steps})" if isinstance(step, int) and isinstance(steps, int) else ""
    return f"{actor} done{where}"


async def events(gw: Gateway, job_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The job's events from the start until its final one, live; survives LISTEN reconnects."""
    after = 0
    while True:
        sub = gw.hub.subscribe(job_id)
        try:
            while True:
                sub.changed.clear()
                try:
                    rows = await gw.store.events_after(job_id, after)
                except DATABASE_DOWN:
                    rows = []
                    sub.lost = True
                for row in rows:
                    after = int(row["id"])
                    data = row["data"] if isinstance(row["data"], dict) else {}
                    yield row["kind"], data
                    if row["kind"] == FINAL_EVENT:
                        return
                if rows:
                    continue
                if sub.lost:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.changed.wait(), timeout=RECHECK_S)
        finally:
            gw.hub.unsubscribe(sub)
        # the hub lost PostgreSQL: wait for it to come back, then read on from the last event seen
        await asyncio.sleep(0.5)
        await gw.hub.connected.wait()


class McpEndpoint:
    """ASGI app at ``/mcp``: 401 without a client token, else the SDK's Streamable HTTP transport."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        settings = request.app.state.gateway.settings
        if not auth.allowed(settings, auth.Audience.CLIENT, auth.presented_token(request)):
            await auth.unauthorized()(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


def session_manager(server: Server[Any]) -> StreamableHTTPSessionManager:
    # Sessions live in this process: a client keeps talking to the replica that started its session
    # (the job itself, and its REST stream, are visible from every replica).
    return StreamableHTTPSessionManager(app=server, json_response=False, stateless=False)
