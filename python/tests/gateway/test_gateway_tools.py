"""Tool configuration and the REST tool entry points (``POST /mcp/tools/call``, ``POST /jobs`` with a tool).

Loading is tested on real YAML files in a temp dir; the REST tests run a real
gateway (uvicorn, PostgreSQL, local transport) and read the published
envelope back from the local queue, so the route, payload and deadline header
are checked where an actor would see them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import RunningGateway, running_gateway, settings

from asya.contracts import headers
from asya.gateway.settings import GatewaySettings
from asya.gateway.tools import ToolConfigError, load
from asya.transports import TransportSettings, local

REPO = Path(__file__).resolve().parents[3]

TEXT_TOOLS = """
routes:
  text:
    actors: [normalize, chunk, classify]
    metadata: {pipeline: text-insights}
tools:
  - name: classify_text
    description: Topic of every chunk of a document
    parameters:
      type: object
      required: [doc, items]
      additionalProperties: false
      properties:
        doc: {type: string}
        items:
          type: array
          items:
            type: object
            required: [text]
            properties:
              text: {type: string, minLength: 1}
    route: {template: text}
"""

OTHER_TOOLS = """
tools:
  - name: echo
    description: one actor
    parameters: {type: object, properties: {n: {type: integer}}}
    route: {actors: [echo]}
"""


def write(dir_: Path, name: str, text: str) -> Path:
    path = dir_ / name
    path.write_text(textwrap.dedent(text))
    return path


def test_files_and_directories_merge_and_templates_are_shared(tmp_path: Path) -> None:
    conf = tmp_path / "tools.d"
    conf.mkdir()
    write(conf, "a.yaml", TEXT_TOOLS)
    write(conf, "ignored.txt", "not: yaml: at all")
    other = write(tmp_path, "other.yaml", OTHER_TOOLS + "  - {name: chunks, route: {template: text}}\n")
    tools = load([conf, other])
    assert sorted(tools) == ["chunks", "classify_text", "echo"]
    assert tools["classify_text"].actors == ("normalize", "chunk", "classify")
    assert tools["classify_text"].metadata == {"pipeline": "text-insights"}
    assert tools["chunks"].actors == ("normalize", "chunk", "classify"), "a template from another file"
    assert tools["echo"].source == str(other)


def test_a_duplicate_tool_name_names_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "first.yaml", OTHER_TOOLS)
    second = write(tmp_path, "second.yaml", OTHER_TOOLS)
    with pytest.raises(ToolConfigError) as err:
        load([first, second])
    assert "'echo'" in str(err.value) and str(first) in str(err.value) and str(second) in str(err.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "tools: [{name: t, parameters: {type: object, properties: {n: {type: 12}}}, route: {actors: [a]}}]",
            "tools[0] (t).parameters.properties.n.type",
        ),
        (
            "tools: [{name: t, parameters: {type: object, required: yes}, route: {actors: [a]}}]",
            "tools[0] (t).parameters.required",
        ),
        ("tools: [{name: t, route: {actors: [Bad_Actor]}}]", "tools[0] (t).route.actors[0]"),
        ("tools: [{name: t, route: {actors: [a, happy-end]}}]", "tools[0] (t).route.actors[1]"),
        ("tools: [{name: t, route: {template: nope}}]", "tools[0] (t).route.template"),
        ("tools: [{name: t, route: {actors: [a]}, colour: red}]", "tools[0].colour"),
        ("tools: [{name: 'has space', route: {actors: [a]}}]", "tools[0].name"),
        ("tools: [{name: t}]", "tools[0] (t).route"),
        ("routes: {r: {actors: []}}\ntools: []", "routes.r.actors"),
        ("tool: []", "tool"),
    ],
)
def test_every_config_error_names_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ToolConfigError) as err:
        load([path])
    assert str(err.value).startswith(f"{path}: {field}"), str(err.value)


def test_a_missing_path_and_broken_yaml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ToolConfigError, match="no such file"):
        load([tmp_path / "absent.yaml"])
    with pytest.raises(ToolConfigError, match="not valid YAML"):
        load([write(tmp_path, "b.yaml", "tools: [unclosed")])


def test_the_example_tool_file_loads_and_routes_the_text_pipeline() -> None:
    tools = load([REPO / "examples/01-text-pipeline/gateway-tools.yaml"])
    assert tools, "the example defines tools"
    assert all(t.actors == ("normalize", "chunk", "classify") for t in tools.values())


def test_serve_refuses_to_start_on_a_broken_tool_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "tools: [{name: t, route: {actors: [Bad]}}]")
    env = {
        **os.environ,
        "ASYA_GATEWAY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "ASYA_GATEWAY_AUTH": "off",
        "ASYA_GATEWAY_TOOLS": str(bad),
    }
    run = subprocess.run(
        [sys.executable, "-m", "asya.gateway", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2, run.stderr
    assert f"{bad}: tools[0] (t).route.actors[0]" in run.stderr and "Traceback" not in run.stderr


def test_settings_read_the_tool_path_list() -> None:
    env = {
        "ASYA_GATEWAY_DATABASE_URL": "postgresql://x/y",
        "ASYA_GATEWAY_AUTH": "off",
        "ASYA_GATEWAY_TOOLS": "a.yaml,b:c/",
    }
    assert GatewaySettings.from_env(env).tool_paths == (Path("a.yaml"), Path("b"), Path("c"))


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    return write(tmp_path, "tools.yaml", TEXT_TOOLS + OTHER_TOOLS.removeprefix("\ntools:\n"))


@pytest.fixture
async def tool_gateway(
    gateway_dsn: str, local_transport: TransportSettings, tools_file: Path
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(settings(gateway_dsn, local_transport, tool_paths=(tools_file,))) as gw:
        yield gw


def published(transport: TransportSettings, actor: str) -> list[dict[str, Any]]:
    """Every envelope waiting in the actor's queue, read straight from the local transport's SQLite file."""
    path = Path(transport.url) / local.DB_FILE
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT body FROM messages WHERE queue = ? ORDER BY id", (f"asya-{actor}",)).fetchall()
    return [json.loads(body) for (body,) in rows]


ARGS = {"doc": "d1", "items": [{"text": "a goal in the last minute"}, {"text": "a new chip"}]}


async def test_mcp_tools_call_over_rest_answers_with_the_job_and_publishes_the_tool_route(
    tool_gateway: RunningGateway, local_transport: TransportSettings
) -> None:
    async with tool_gateway.client() as c:
        r = await c.post("/mcp/tools/call", json={"tool": "classify_text", "params": ARGS})
        assert r.status_code == 201, r.text
        answer = r.json()
        assert answer["status"] == "queued" and answer["tool"] == "classify_text"
        assert answer["stream_url"] == f"{tool_gateway.url}/jobs/{answer['job_id']}/stream"
        job = (await c.get(f"/jobs/{answer['job_id']}")).json()
    assert job["tool"] == "classify_text"
    assert job["route"] == {
        "actors": ["normalize", "chunk", "classify"],
        "current": 0,
        "metadata": {"pipeline": "text-insights"},
    }
    assert job["payload"] == ARGS
    [envelope] = published(local_transport, "normalize")
    assert envelope["id"] == answer["job_id"] and envelope["payload"] == ARGS


async def test_post_jobs_takes_a_tool_with_a_deadline_and_idempotency(
    tool_gateway: RunningGateway, local_transport: TransportSettings
) -> None:
    body = {"tool": "echo", "params": {"n": 1}, "timeout_s": 60}
    async with tool_gateway.client() as c:
        before = time.time()
        r = await c.post("/jobs", json=body, headers={"Idempotency-Key": "k1"})
        assert r.status_code == 201, r.text
        again = await c.post("/jobs", json=body, headers={"Idempotency-Key": "k1"})
        assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
        other = await c.post("/jobs", json={**body, "params": {"n": 2}}, headers={"Idempotency-Key": "k1"})
        assert other.status_code == 409
        rfc = await c.post("/jobs", json={"tool": "echo", "params": {}, "deadline": "2099-01-01T00:00:00Z"})
        assert rfc.status_code == 201, rfc.text
    assert r.json()["tool"] == "echo"
    by_id = {e["id"]: e for e in published(local_transport, "echo")}
    assert len(by_id) == 2, "the idempotent replay was not published again"
    deadline = by_id[r.json()["id"]]["headers"][headers.DEADLINE]
    assert before + 59 < deadline < time.time() + 61
    assert by_id[rfc.json()["id"]]["headers"][headers.DEADLINE] == 4070908800.0


async def test_route_jobs_take_a_deadline_in_unix_seconds(
    tool_gateway: RunningGateway, local_transport: TransportSettings
) -> None:
    deadline = time.time() + 300
    async with tool_gateway.client() as c:
        r = await c.post("/jobs", json={"route": {"actors": ["plain"]}, "payload": 1, "deadline": deadline})
        assert r.status_code == 201, r.text
    [envelope] = published(local_transport, "plain")
    assert envelope["headers"][headers.DEADLINE] == deadline


BAD_TOOL_REQUESTS: list[tuple[dict[str, Any], int, str]] = [
    (
        {"tool": "classify_text", "params": {"doc": "d", "items": [{"text": "x"}, {"text": "y"}, {"text": ""}]}},
        422,
        "params.items[2].text",
    ),
    ({"tool": "classify_text", "params": {"doc": "d", "items": [{"text": "x"}, {}]}}, 422, "params.items[1].text"),
    ({"tool": "classify_text", "params": {"items": []}}, 422, "params.doc"),
    ({"tool": "classify_text", "params": {"doc": 3, "items": []}}, 422, "params.doc"),
    ({"tool": "classify_text", "params": []}, 422, "params"),
    ({"tool": "echo", "params": {}, "deadline": 1}, 422, "deadline"),
    ({"tool": "echo", "params": {}, "deadline": "2001-01-01T00:00:00Z"}, 422, "deadline"),
    ({"tool": "echo", "params": {}, "deadline": "tomorrow"}, 422, "deadline"),
    ({"tool": "echo", "params": {}, "deadline": "2099-01-01T00:00:00"}, 422, "deadline"),
    ({"tool": "echo", "params": {}, "deadline": 10**400}, 422, "deadline"),
    ({"tool": "echo", "params": {}, "timeout_s": 0}, 422, "timeout_s"),
    ({"tool": "echo", "params": {}, "timeout_s": 5, "deadline": 4e9}, 422, "timeout_s"),
    ({"tool": "echo", "params": {}, "route": {"actors": ["a"]}}, 422, "route"),
    ({"tool": "nope", "params": {}}, 404, "tool"),
    ({"tool": 7}, 422, "tool"),
]


async def test_bad_tool_requests_name_the_field(
    tool_gateway: RunningGateway, local_transport: TransportSettings
) -> None:
    # one gateway for every case: starting one per case costs more than the cases
    async with tool_gateway.client() as c:
        for body, status, field in BAD_TOOL_REQUESTS:
            for path in ("/jobs", "/mcp/tools/call"):
                r = await c.post(path, json=body)
                assert (r.status_code, r.json().get("field")) == (status, field), (path, body, r.text)
        assert (await c.get("/jobs")).json()["jobs"] == [], "nothing was stored"
    assert published(local_transport, "normalize") == [] and published(local_transport, "echo") == []


async def test_mcp_tools_call_needs_a_client_token(tool_gateway: RunningGateway) -> None:
    async with tool_gateway.client(None) as c:
        assert (await c.post("/mcp/tools/call", json={"tool": "echo", "params": {}})).status_code == 401
    async with tool_gateway.reporter() as c:
        assert (await c.post("/mcp/tools/call", json={"tool": "echo", "params": {}})).status_code == 401


async def test_jobs_list_filters_by_tool_across_pages(tool_gateway: RunningGateway) -> None:
    async with tool_gateway.client() as c:
        made = []
        for _ in range(3):
            r = await c.post("/mcp/tools/call", json={"tool": "classify_text", "params": ARGS})
            assert r.status_code == 201, r.text
            made.append(r.json()["job_id"])
        r = await c.post("/jobs", json={"route": {"actors": ["normalize"]}, "payload": {}})
        assert r.status_code == 201, r.text
        seen, cursor = [], None
        while True:
            params = {"tool": "classify_text", "limit": "2", **({"cursor": cursor} if cursor else {})}
            page = (await c.get("/jobs", params=params)).json()
            seen += [job["id"] for job in page["jobs"]]
            assert all(job["tool"] == "classify_text" for job in page["jobs"])
            if not (cursor := page["next_cursor"]):
                break
        assert seen == made[::-1], "newest first, only the tool's jobs, no page repeats or skips"
        assert (await c.get("/jobs", params={"tool": "no_such_tool"})).json()["jobs"] == []
        too_long = await c.get("/jobs", params={"tool": "t" * 201})
        assert too_long.status_code == 422 and too_long.json()["field"] == "tool"
