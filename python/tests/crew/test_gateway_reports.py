"""End actors report succeeded / retrying / failed to the gateway; a missing gateway never blocks them."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from crew_helpers import error_message, eventually, open_transport, running, settings_for, stored, take

from asya.contracts.envelope import encode_envelope
from asya.crew.settings import RetrySettings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A recording stand-in for the gateway's ``POST /jobs/{id}/final``."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def final(request: web.Request) -> web.Response:
        seen.append((request.match_info["id"], await request.json()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes([web.post("/jobs/{id}/final", final)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_end_actors_report_final_statuses(
    tmp_path: Path, gateway: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, seen = gateway
    settings = settings_for(tmp_path, gateway_url=url, retry=RetrySettings(max_attempts=2, backoff_base_s=0.01))
    t = await open_transport(settings)
    try:
        async with running("happy-end", settings), running("error-end", settings):
            ok = {"id": "job/ok", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": {"r": 1}}
            await t.publish("asya-happy-end", encode_envelope(ok))
            await t.publish(
                "asya-error-end", json.dumps(error_message("job-bad", ["a"], 0, original_payload=0)).encode()
            )
            [retry] = await take(t, "asya-a", 1)
            again = error_message("job-bad", ["a"], 0, headers=retry["headers"], original_payload=0)
            await t.publish("asya-error-end", json.dumps(again).encode())
            await eventually(lambda: len(seen) == 3, what="three reports")
    finally:
        await t.close()
    by_status = {body["status"]: (job, body) for job, body in seen}
    job, body = by_status["succeeded"]
    assert job == "job/ok" and body["result"] == {"r": 1} and body["actor"] == "a"
    assert body["uri"].startswith("file://") and body["uri"].endswith("/a/job%252Fok.json")  # file name job%2Fok.json
    job, body = by_status["retrying"]
    assert job == "job-bad" and body["attempt"] == 2 and body["delay_s"] >= 0
    job, body = by_status["failed"]
    assert job == "job-bad" and body["reason"] == "budget_exhausted"
    assert body["error"] == {"error": "processing_error", "message": "boom", "type": "ValueError"}


async def test_unreachable_gateway_does_not_hold_results_back(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = settings_for(tmp_path, gateway_url=dead)
    t = await open_transport(settings)
    try:
        async with running("happy-end", settings):
            env = {"id": "g", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": 1}
            await t.publish("asya-happy-end", encode_envelope(env))
            await eventually(lambda: stored(tmp_path / "store"), what="stored result")
        # after the drain: an unsettled delivery would have been given back on close
        assert await _depth_zero(t), "the result was not acknowledged"
    finally:
        await t.close()


async def _depth_zero(t: Any) -> bool:
    return bool(await t.queue_depth("asya-happy-end") == 0)
