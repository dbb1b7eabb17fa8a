"""``python -m asya.crew happy-end|error-end`` as real processes: env config, SIGTERM drain."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from crew_helpers import eventually, open_transport, settings_for, stored, take
from support.procs import Proc, base_env

from asya.contracts.envelope import encode_envelope

pytestmark = pytest.mark.timeout(60)


def _start(actor: str, tmp: Path, **env: str) -> Proc:
    settings = settings_for(tmp)
    return Proc(
        [sys.executable, "-m", "asya.crew", actor],
        base_env(
            **{
                "ASYA_TRANSPORT": "local",
                "ASYA_TRANSPORT_URL": settings.transport_url,
                "ASYA_STORAGE_URL": settings.storage_url,
                "ASYA_RETRY_BACKOFF_BASE_S": "0.01",
                **env,
            }
        ),
        tmp / f"{actor}-{time.monotonic_ns()}.log",
    )


async def test_both_crew_processes_run_from_env_and_exit_cleanly_on_sigterm(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    happy = _start("happy-end", tmp_path)
    error = _start("error-end", tmp_path, ASYA_RETRY_MAX_ATTEMPTS="1")
    t = await open_transport(settings)
    try:
        env = {"id": "p-1", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": "done"}
        await t.publish("asya-happy-end", encode_envelope(env))
        failed = {
            "id": "p-2",
            "route": {"actors": ["a"], "current": 0},
            "headers": {},
            "payload": {"error": "processing_error", "details": {}, "original_payload": 1},
        }
        await t.publish("asya-error-end", json.dumps(failed).encode())
        await eventually(lambda: stored(tmp_path / "store"), 20, what=f"result stored\n{happy.log()}")
        [dead] = await take(t, "asya-dlq", 1, timeout=20)
        assert dead["id"] == "p-2" and dead["headers"]["x-asya-dlq-reason"] == "budget_exhausted"
        for proc in (happy, error):
            proc.signal(signal.SIGTERM)
        assert happy.popen.wait(15) == 0, happy.log()
        assert error.popen.wait(15) == 0, error.log()
    finally:
        happy.stop()
        error.stop()
        await t.close()


def test_unknown_actor_is_a_usage_error(tmp_path: Path) -> None:
    proc = _start("middle-end", tmp_path)
    assert proc.popen.wait(15) == 2
    assert "usage" in proc.log()


async def test_sigterm_while_storage_is_down_gives_the_result_back_and_exits(tmp_path: Path) -> None:
    with socket.socket() as s:  # an S3 endpoint nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    happy = _start(
        "happy-end",
        tmp_path,
        ASYA_STORAGE_URL="s3://asya-results/p",
        ASYA_S3_ENDPOINT_URL=dead,
        AWS_ACCESS_KEY_ID="k",
        AWS_SECRET_ACCESS_KEY="s",
    )
    t = await open_transport(settings_for(tmp_path))
    try:
        env = {"id": "held", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": 1}
        await t.publish("asya-happy-end", encode_envelope(env))
        await eventually(lambda: "could not store held" in happy.log(), 20, what="a failed store")
        started = time.monotonic()
        happy.signal(signal.SIGTERM)
        assert happy.popen.wait(15) == 0, happy.log()
        assert time.monotonic() - started < 10  # does not sit out its backoff pause
        assert await t.queue_depth("asya-happy-end") == 1  # given back, not lost
    finally:
        happy.stop()
        await t.close()
