"""MCP at ``/mcp``, driven by the official ``mcp`` SDK client over Streamable HTTP.

The gateway is the real app under uvicorn; the pipeline behind the tool is
real sidecar + runtime processes and the crew's end actors (started as in
``test_gateway_pipeline.py``), reporting to the gateway, so a tool call is
followed all the way to the result the last actor produced.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from gateway_helpers import CLIENT_TOKEN, REPORT_TOKEN, RunningGateway, running_gateway, settings, stream, until
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS
from support.procs import Proc
from test_gateway_pipeline import logs_text, start_pipeline
from test_gateway_tools import TEXT_TOOLS, published, write

from asya.contracts import headers
from asya.gateway.mcp_server import ProgressMeter
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(120)

MODES = ["legacy", "auto"]
"""``legacy``: the 2025-11-25 initialize handshake; ``auto``: the SDK's newest protocol (2026-07-28)."""


@contextlib.asynccontextmanager
async def mcp_client(gw: RunningGateway, mode: str = "legacy", token: str = CLIENT_TOKEN) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(gw.url + "/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


async def call_as_task(client: Client, name: str, arguments: dict[str, Any]) -> types.CreateTaskResult:
    """A task-augmented ``tools/call`` (2025-11-25).

    The SDK's ``call_tool``/``send_request`` check a ``tools/call`` answer as a
    plain ``CallToolResult`` (SDK 2.3 has no client-side task support), so this
    one request goes through the session's own dispatcher, over the same
    Streamable HTTP connection, and the answer is checked as a ``CreateTaskResult``.
    """
    params = types.CallToolRequestParams(name=name, arguments=arguments, task=types.TaskMetadata(ttl=60_000))
    wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
    raw = await client.session._dispatcher.send_raw_request("tools/call", wire, {})
    return types.CreateTaskResult.model_validate(raw, by_name=False)


async def get_task(client: Client, task_id: str) -> types.GetTaskResult:
    request = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id))
    return await client.session.send_request(request, types.GetTaskResult)


async def cancel_task(client: Client, task_id: str) -> types.CancelTaskResult:
    request = types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task_id))
    return await client.session.send_request(request, types.CancelTaskResult)


async def task_result(client: Client, task_id: str, timeout: float = 60) -> types.CallToolResult:
    request = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id))
    return await client.session.send_request(request, types.CallToolResult, request_read_timeout_seconds=timeout)


@pytest.fixture
async def text_gateway(
    gateway_dsn: str, local_transport: TransportSettings, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    tools = write(tmp_path, "tools.yaml", TEXT_TOOLS)
    async with running_gateway(settings(gateway_dsn, local_transport, tool_paths=(tools,))) as gw:
        yield gw


@pytest.mark.parametrize("mode", MODES)
async def test_list_tools_and_bad_arguments_are_invalid_params_naming_the_field(
    text_gateway: RunningGateway, mode: str
) -> None:
    async with mcp_client(text_gateway, mode) as client:
        listed = (await client.list_tools()).tools
        assert [t.name for t in listed] == ["classify_text"]
        assert listed[0].input_schema["required"] == ["doc", "items"]
        assert listed[0].description == "Topic of every chunk of a document"
        bad = {"doc": "d", "items": [{"text": "x"}, {"text": "y"}, {"text": ""}]}
        with pytest.raises(MCPError) as err:
            await client.call_tool("classify_text", bad)
        assert err.value.code == INVALID_PARAMS
        assert err.value.message.startswith("arguments.items[2].text:"), err.value.message
        assert err.value.data["field"] == "arguments.items[2].text"
        with pytest.raises(MCPError) as err:
            await client.call_tool("classify_text", {"items": []})
        assert err.value.code == INVALID_PARAMS and err.value.data["field"] == "arguments.doc"
        with pytest.raises(MCPError) as err:
            await client.call_tool("no_such_tool", {})
        assert err.value.code == INVALID_PARAMS and err.value.data["field"] == "tool"
    async with text_gateway.client() as c:
        assert (await c.get("/jobs")).json()["jobs"] == [], "no job for a refused call"


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_without_progress_token_answers_at_once_with_the_job(
    text_gateway: RunningGateway, local_transport: TransportSettings, mode: str
) -> None:
    args = {"doc": "d", "items": [{"text": "x"}]}
    async with mcp_client(text_gateway, mode) as client:
        before = time.time()
        result = await client.call_tool("classify_text", args, meta={"asya/timeout_s": 60})
        with pytest.raises(MCPError) as err:
            await client.call_tool("classify_text", args, meta={"asya/deadline": "2001-01-01T00:00:00Z"})
        assert err.value.code == INVALID_PARAMS and err.value.data["field"] == "_meta.asya/deadline"
    # nothing consumes `normalize` here: an answer at all proves the call did not wait for the job
    answer = result.structured_content
    assert not result.is_error and answer["status"] == "queued", result
    assert answer["stream_url"] == f"{text_gateway.url}/jobs/{answer['job_id']}/stream"
    assert answer["job_id"] in result.content[0].text  # type: ignore[union-attr]
    async with text_gateway.client() as c:
        job = (await c.get(f"/jobs/{answer['job_id']}")).json()
    assert job["tool"] == "classify_text" and job["payload"] == args and job["status"] == "queued"
    [envelope] = published(local_transport, "normalize")
    assert before + 59 < envelope["headers"][headers.DEADLINE] < time.time() + 61


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_gives_up_ends_the_wait_and_the_job_runs_on(
    text_gateway: RunningGateway, mode: str
) -> None:
    hub = text_gateway.server.config.app.state.gateway.hub
    seen: list[str | None] = []

    async def on_progress(_progress: float, _total: float | None, message: str | None) -> None:
        seen.append(message)

    async with mcp_client(text_gateway, mode) as client:
        with pytest.raises(MCPError):  # nothing consumes `normalize`: the job never ends, the client times out
            await client.call_tool(
                "classify_text", {"doc": "d", "items": []}, progress_callback=on_progress, read_timeout_seconds=1
            )
        assert seen and "queued" in (seen[0] or ""), "the first notification names the job"
        await until(lambda: hub.subscribers == 0, "the gateway stopped following the abandoned call")
    async with text_gateway.client() as c:
        [job] = (await c.get("/jobs")).json()["jobs"]
    assert job["status"] == "queued", "the job itself is not cancelled by a client going away"


async def test_tasks_are_advertised_and_a_task_is_its_job_cancelled_through_tasks_cancel(
    text_gateway: RunningGateway,
) -> None:
    args = {"doc": "d", "items": [{"text": "x"}]}
    async with mcp_client(text_gateway, "legacy") as client:
        caps = client.server_capabilities.tasks
        assert caps is not None and caps.requests is not None and caps.requests.tools is not None
        assert caps.cancel is not None
        [tool] = (await client.list_tools()).tools
        assert tool.execution is not None and tool.execution.task_support == "optional"
        created = (await call_as_task(client, "classify_text", args)).task
        assert created.status == "working" and created.poll_interval
        assert (await get_task(client, created.task_id)).status == "working"  # nothing consumes `normalize`
        cancelled = await cancel_task(client, created.task_id)
        assert cancelled.status == "cancelled"
        result = await task_result(client, created.task_id)
        assert result.is_error and result.structured_content["status"] == "cancelled"
        assert result.meta == {"io.modelcontextprotocol/related-task": {"taskId": created.task_id}}
        with pytest.raises(MCPError) as err:
            await cancel_task(client, created.task_id)
        assert err.value.code == INVALID_PARAMS and "already cancelled" in err.value.message
        with pytest.raises(MCPError) as err:
            await get_task(client, "no-such-task")
        assert err.value.code == INVALID_PARAMS and err.value.message.startswith("taskId:")
        with pytest.raises(MCPError) as err:
            await call_as_task(client, "classify_text", {"doc": "d", "items": [{}]})
        assert err.value.code == INVALID_PARAMS and err.value.data["field"] == "arguments.items[0].text"
    async with text_gateway.client() as c:
        job = (await c.get(f"/jobs/{created.task_id}")).json()
        assert job["status"] == "cancelled" and job["tool"] == "classify_text" and job["payload"] == args
        assert len((await c.get("/jobs")).json()["jobs"]) == 1, "the refused task call stored nothing"


def test_progress_always_increases_and_the_end_reaches_the_total() -> None:
    meter = ProgressMeter()
    report = {"status": "success", "steps": 2}
    feed = [
        ("created", {"status": "queued"}),
        ("progress", {**report, "actor": "prep", "step": 0}),
        ("retrying", {"actor": "infer", "status": "retrying"}),
        ("retrying", {"actor": "infer", "status": "retrying"}),
        ("progress", {**report, "actor": "prep", "step": 0}),  # a fan-out sibling at the same step
        ("progress", {**report, "actor": "infer", "step": 1}),
        ("final", {"status": "succeeded", "actor": "happy-end"}),
    ]
    sent = [update for kind, data in feed if (update := meter.feed(kind, data)) is not None]
    values = [p for p, _, _ in sent]
    assert values == [1.0, 1.5, 1.75, 1.875, 2.0, 3.0]
    assert all(total == 3.0 for _, total, _ in sent)
    assert [m for _, _, m in sent][:2] == ["prep done (step 1/2)", "infer failed; retry scheduled"]
    assert sent[-1][2] == "job succeeded"
    failed_early = ProgressMeter()
    assert failed_early.feed("final", {"status": "failed"}) == (1.0, None, "job failed")


async def test_mcp_needs_a_client_token(text_gateway: RunningGateway) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for token in (None, "wrong", REPORT_TOKEN):
        async with text_gateway.client(token) as c:
            r = await c.post("/mcp", json=init, headers=accept)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (token, r.text)
    async with text_gateway.client() as c:
        assert (await c.post("/mcp", json=init, headers=accept)).status_code == 200
    with pytest.raises(BaseException) as err:  # what an SDK client without the token sees
        async with mcp_client(text_gateway, token="wrong"):
            pass
    # the SDK reports the refused HTTP request as an error inside its task groups
    assert any(isinstance(e, MCPError) for e in leaves(err.value)), repr(err.value)


def leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


async def test_mcp_is_open_when_auth_is_off(gateway_dsn: str, local_transport: TransportSettings) -> None:
    async with (
        running_gateway(settings(gateway_dsn, local_transport, auth=False)) as gw,
        httpx2.AsyncClient() as http,
        Client(streamable_http_client(gw.url + "/mcp", http_client=http)) as c,
    ):
        assert (await c.list_tools()).tools == []


async def test_mcp_is_the_one_non_rest_route(text_gateway: RunningGateway) -> None:
    """The OpenAPI test checks ``ROUTES`` (REST); this pins that the app adds nothing else but ``/mcp``."""
    from asya.gateway.app import ROUTES, create_app
    from asya.gateway.settings import GatewaySettings

    app = create_app(GatewaySettings(database_url="postgresql://unused/x", auth=False))
    extra = [r for r in app.routes if r not in ROUTES]
    assert [getattr(r, "path", None) for r in extra] == ["/mcp"]
    async with text_gateway.client() as c:
        # /mcp/tools/call is REST (in ROUTES and the OpenAPI document), not swallowed by the MCP endpoint
        assert "/mcp/tools/call" in (await c.get("/openapi.json")).json()["paths"]


# --- through real actors ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_an_mcp_tool_call_runs_through_real_actors_with_progress_to_its_result(
    gateway_dsn: str, local_transport: TransportSettings, tmp_path: Path, procs: list[Proc], mode: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    first, second = f"prep-{suffix}", f"infer-{suffix}"
    tools = write(
        tmp_path,
        "tools.yaml",
        f"""
        tools:
          - name: add_twice
            description: add one, twice
            parameters: {{type: object, required: [n], properties: {{n: {{type: integer}}}}}}
            route: {{actors: [{first}, {second}]}}
        """,
    )
    async with running_gateway(settings(gateway_dsn, local_transport, tool_paths=(tools,))) as gw:
        start_pipeline(gw, local_transport, tmp_path, procs, {a: "support.handlers.add_one" for a in (first, second)})
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with mcp_client(gw, mode) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["add_twice"]
            try:
                followed = await client.call_tool(
                    "add_twice", {"n": 1}, progress_callback=on_progress, read_timeout_seconds=60
                )
            except MCPError as exc:
                raise AssertionError(f"{exc}\n{logs_text(procs)}") from None
            quick = await client.call_tool("add_twice", {"n": 10})

        # with a progress token the call stayed open until the job ended and carries its result
        answer: dict[str, Any] = followed.structured_content
        assert answer["status"] == "succeeded" and not followed.is_error, answer
        assert answer["result"] == {"n": 3, "trail": [first, second]}
        values = [p for p, _, _ in seen]
        assert values == sorted(set(values)), f"progress must increase: {seen}"
        assert values[0] == 0 and answer["job_id"] in (seen[0][2] or "")
        assert any(first in (m or "") for _, _, m in seen) and any(second in (m or "") for _, _, m in seen), seen
        assert seen[-1][:2] == (3.0, 3.0) and "succeeded" in (seen[-1][2] or ""), seen

        # without one it answered at once; the job is followed over the REST stream to the same kind of result
        assert quick.structured_content["status"] == "queued"
        async with gw.client() as c, stream(c, quick.structured_content["job_id"]) as s:
            try:
                events = await s.rest(timeout=60)
            except TimeoutError:
                raise AssertionError("no final event\n" + logs_text(procs)) from None
        assert events[-1].kind == "final" and events[-1].data["result"] == {"n": 12, "trail": [first, second]}
        async with gw.client() as c:
            job = (await c.get(f"/jobs/{answer['job_id']}")).json()
        assert job["tool"] == "add_twice" and job["status"] == "succeeded"

        if mode == "legacy":  # tasks exist on the 2025-11-25 wire only
            async with mcp_client(gw, mode) as client:
                task = (await call_as_task(client, "add_twice", {"n": 100})).task
                polled = await task_result(client, task.task_id)  # blocks until the job has ended
                assert (await get_task(client, task.task_id)).status == "completed"
            assert not polled.is_error and polled.structured_content["result"] == {"n": 102, "trail": [first, second]}
