"""happy-end stores each final envelope once, at the SPEC section 7 key, intact."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from crew_helpers import drained, eventually, open_transport, running, stored, take

from asya.contracts.envelope import encode_envelope
from asya.crew.settings import CrewSettings
from asya.storage import utc_day

pytestmark = pytest.mark.timeout(60)


def _store_root(settings: CrewSettings) -> Path:
    return Path(settings.storage_url.removeprefix("file://"))


async def test_final_envelope_is_stored_under_date_and_last_actor(crew_settings: CrewSettings) -> None:
    root = _store_root(crew_settings)
    env = {
        "id": "job-1",
        "route": {"actors": ["clean", "score"], "current": 2, "metadata": {"m": 1}},
        "headers": {"traceparent": "00-abc-def-01", "user": "k"},
        "payload": {"score": 0.9},
        "future_field": {"kept": True},
    }
    t = await open_transport(crew_settings)
    try:
        async with running("happy-end", crew_settings):
            await t.publish("asya-happy-end", encode_envelope(env))
            files = await eventually(lambda: stored(root), what="stored result")
        assert [p.relative_to(root).as_posix() for p in files] == [f"{utc_day(time.time())}/score/job-1.json"]
        assert json.loads(files[0].read_bytes()) == env
        assert await t.queue_depth("asya-happy-end") == 0
    finally:
        await t.close()


async def test_early_ended_envelope_is_filed_under_the_actor_that_ended_it(crew_settings: CrewSettings) -> None:
    root = _store_root(crew_settings)
    env = {"id": "early", "route": {"actors": ["a", "b", "c"], "current": 1}, "headers": {}, "payload": None}
    t = await open_transport(crew_settings)
    try:
        async with running("happy-end", crew_settings):
            await t.publish("asya-happy-end", encode_envelope(env))
            files = await eventually(lambda: stored(root), what="stored result")
        assert files[0].parent.name == "b"
    finally:
        await t.close()


async def test_duplicate_delivery_stores_once(crew_settings: CrewSettings) -> None:
    root = _store_root(crew_settings)
    env = {"id": "dup/../x", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": [1, 2]}
    t = await open_transport(crew_settings)
    try:
        async with running("happy-end", crew_settings):
            for _ in range(3):
                await t.publish("asya-happy-end", encode_envelope(env))
            await eventually(lambda: stored(root), what="stored result")
            await eventually(drained(t, "asya-happy-end"), what="queue drained")
        files = stored(root)
        assert len(files) == 1, files
        assert files[0].parent.name == "a"  # the odd id stays inside its folder
        assert json.loads(files[0].read_bytes())["id"] == "dup/../x"
    finally:
        await t.close()


async def test_bytes_that_are_not_an_envelope_go_to_the_dlq_not_the_results(crew_settings: CrewSettings) -> None:
    root = _store_root(crew_settings)
    t = await open_transport(crew_settings)
    try:
        async with running("happy-end", crew_settings):
            await t.publish("asya-happy-end", b"\xff\xfe not json")
            [dead] = await take(t, "asya-dlq", 1)
        assert dead["payload"]["error"] == "msg_parsing_error"
        assert dead["headers"]["x-asya-dlq-reason"] == "unparsable"
        assert dead["payload"]["original_body_encoding"] == "base64"
        assert stored(root) == []
        assert len(stored(root, "errors")) == 1
    finally:
        await t.close()
