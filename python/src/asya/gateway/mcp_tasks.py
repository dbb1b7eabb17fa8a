"""MCP tasks (protocol revision 2025-11-25, experimental) backed by gateway jobs.

The ``mcp`` SDK (2.3) ships the task *types* but deliberately does not
dispatch ``tasks/*`` (its method maps say so), so this module adds them
through the SDK's public hooks: ``Server.add_request_handler`` for
``tasks/get``, ``tasks/result`` and ``tasks/cancel``, and a server middleware
that answers a task-augmented ``tools/call`` with a ``CreateTaskResult`` (the
SDK would otherwise check that answer as a plain ``CallToolResult``) and
advertises the ``tasks`` capability on ``initialize``.

A task *is* the job: the task id is the job id, so a task is visible from
every replica and survives gateway restarts, and its status maps one to one
(queued/running/retrying → working, succeeded → completed, failed → failed,
cancelled → cancelled). ``tasks/cancel`` is the job cancel of the REST API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from asya.gateway import mcp_server, store, submit

TASKS_VERSIONS = frozenset({"2025-11-25"})
"""Protocol versions whose tools/call may carry ``task`` (2026-07-28 moved tasks into an extension)."""
RELATED_TASK = "io.modelcontextprotocol/related-task"
POLL_INTERVAL_MS = 1000

_STATUS: dict[str, types.TaskStatus] = {
    store.QUEUED: "working",
    store.RUNNING: "working",
    store.RETRYING: "working",
    store.SUCCEEDED: "completed",
    store.FAILED: "failed",
    store.CANCELLED: "cancelled",
}
CAPABILITY: dict[str, Any] = {"cancel": {}, "requests": {"tools": {"call": {}}}}


def task_of(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job as an MCP ``Task`` (wire form)."""
    status = _STATUS[job["status"]]
    task: dict[str, Any] = {
        "taskId": job["id"],
        "status": status,
        "createdAt": job["created_at"],
        "lastUpdatedAt": job["updated_at"] or job["created_at"],
        "ttl": None,  # jobs are kept, not expired
        "pollInterval": POLL_INTERVAL_MS,
    }
    message = _status_message(job)
    if message:
        task["statusMessage"] = message
    return task


def _status_message(job: Mapping[str, Any]) -> str | None:
    progress, error = job.get("progress"), job.get("error")
    if job["status"] == store.FAILED and isinstance(error, dict):
        return f"failed at {error.get('actor') or '?'}: {error.get('reason') or error.get('error') or 'error'}"
    if isinstance(progress, dict) and progress.get("actor"):
        where = ""
        if isinstance(progress.get("step"), int) and isinstance(progress.get("steps"), int):
            where = f" (step {progress['step'] + 1}/{progress['steps']})"
        return f"{job['status']}: {progress['actor']} done{where}"
    return str(job["status"])


def install(server: Server[Any], state: mcp_server.State) -> None:
    async def job_of(task_id: str) -> dict[str, Any]:
        gw, _ = state()
        job = await gw.store.get(task_id)
        if job is None:
            raise MCPError(INVALID_PARAMS, f"taskId: no task {task_id!r}", data={"field": "taskId"})
        return job

    async def get_task(_ctx: ServerRequestContext[Any, Any], params: types.GetTaskRequestParams) -> HandlerResult:
        return task_of(await job_of(params.task_id))

    async def task_result(
        ctx: ServerRequestContext[Any, Any], params: types.GetTaskPayloadRequestParams
    ) -> HandlerResult:
        # tasks/result blocks until the task has ended, then answers what the tools/call would have
        gw, _ = state()
        job = await job_of(params.task_id)
        receipt = submit.receipt(mcp_server.request_of(ctx), job)
        result = mcp_server.tool_result(receipt, await mcp_server.wait_end(gw, job["id"]))
        wire = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        wire["_meta"] = {RELATED_TASK: {"taskId": job["id"]}}
        return wire

    async def cancel_task(_ctx: ServerRequestContext[Any, Any], params: types.CancelTaskRequestParams) -> HandlerResult:
        gw, _ = state()
        job = await job_of(params.task_id)
        if job["status"] in store.TERMINAL:
            raise MCPError(
                INVALID_PARAMS, f"cannot cancel task {job['id']!r}: already {_STATUS[job['status']]}", data=task_of(job)
            )
        cancelled = await gw.store.cancel(job["id"])
        assert cancelled is not None
        return task_of(cancelled)

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            result = await call_next(ctx)
            if isinstance(result, dict) and result.get("protocolVersion") in TASKS_VERSIONS:
                result.setdefault("capabilities", {})["tasks"] = CAPABILITY
            return result
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        if ctx.method != "tools/call" or params.get("task") is None or ctx.protocol_version not in TASKS_VERSIONS:
            return await call_next(ctx)
        call = types.CallToolRequestParams.model_validate(params, by_name=False)
        gw, tools = state()
        request = mcp_server.request_of(ctx)
        receipt = await mcp_server.create_job(gw, tools, call.name, call.arguments, request, ctx.meta)
        job = await gw.store.get(receipt["job_id"])
        assert job is not None
        return {"task": task_of(job)}

    server.middleware.append(middleware)
    server.add_request_handler("tasks/get", types.GetTaskRequestParams, get_task)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, task_result)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, cancel_task)
