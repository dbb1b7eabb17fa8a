"""error-end: a retry re-enters the failing actor's queue, later; the budget ends in the DLQ."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from crew_helpers import error_message, open_transport, running, settings_for, stored, take
from crew_pipeline import local_held
from support.procs import free_port, scrape

from asya.contracts import headers as h
from asya.contracts import metrics as names
from asya.crew.settings import RetrySettings

pytestmark = pytest.mark.timeout(60)


async def test_retry_restores_the_original_envelope_with_route_unchanged(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, retry=RetrySettings(max_attempts=3, backoff_base_s=0.2, jitter=0.0))
    msg = error_message(
        "e-1",
        ["a", "b", "c"],
        1,
        headers={"traceparent": "t", "k": 1},
        original_payload={"text": "hi"},
        extra_field="kept",
    )
    msg["route"]["metadata"] = {"m": True}
    t = await open_transport(settings)
    try:
        async with running("error-end", settings):
            sent = time.time()
            await t.publish("asya-error-end", json.dumps(msg).encode())
            [retry] = await take(t, "asya-b", 1)
            arrived = time.time()
        assert retry["payload"] == {"text": "hi"}
        assert retry["route"] == {"actors": ["a", "b", "c"], "current": 1, "metadata": {"m": True}}
        assert retry["extra_field"] == "kept"
        assert retry["headers"]["traceparent"] == "t" and retry["headers"]["k"] == 1
        assert retry["headers"][h.RETRY_ATTEMPT] == 2
        assert retry["headers"][h.RETRY_MAX] == 3
        assert retry["headers"][h.RETRY_STEP] == 1
        assert arrived - sent >= 0.2  # the broker held it back; error-end did not sleep on it
        assert stored(tmp_path / "store", "errors") == []
    finally:
        await t.close()


async def test_handler_that_always_fails_gets_exactly_the_budget_then_dlq(tmp_path: Path) -> None:
    budget = 4
    port = free_port()
    settings = settings_for(
        tmp_path, retry=RetrySettings(max_attempts=budget, backoff_base_s=0.01, jitter=0.5), health_port=port
    )
    t = await open_transport(settings)
    retried_attempts: list[int] = []
    try:
        async with running("error-end", settings):
            # play the failing actor: every envelope error-end sends back to asya-x fails again
            await t.publish(
                "asya-error-end", json.dumps(error_message("always", ["x"], 0, original_payload=7)).encode()
            )
            for _ in range(budget - 1):
                [env] = await take(t, "asya-x", 1)
                retried_attempts.append(env["headers"][h.RETRY_ATTEMPT])
                failed = error_message("always", ["x"], 0, headers=env["headers"], original_payload=env["payload"])
                await t.publish("asya-error-end", json.dumps(failed).encode())
            [dead] = await take(t, "asya-dlq", 1)
            metrics = await asyncio.to_thread(scrape, port)  # the server runs in this loop
        # error-end's own numbering: one retry per attempt after the first, none twice, none skipped
        assert retried_attempts == list(range(2, budget + 1))
        assert metrics.get(f'{names.CREW_RETRIES_SCHEDULED}{{actor="x"}}') == budget - 1
        assert metrics.get(f'{names.CREW_DEAD_LETTERS}{{actor="x",reason="budget_exhausted"}}') == 1
        assert sum(v for k, v in metrics.items() if k.startswith(names.CREW_DEAD_LETTERS)) == 1
        assert local_held(settings.transport_url, "asya-x") == 0
        assert dead["id"] == "always"
        assert dead["headers"][h.DLQ_REASON] == "budget_exhausted"
        assert dead["headers"][h.RETRY_ATTEMPT] == budget
        assert dead["payload"]["original_payload"] == 7
        [record] = stored(tmp_path / "store", "errors")
        assert record.parent.name == "x"
        assert json.loads(record.read_bytes())["dlq"]["reason"] == "budget_exhausted"
    finally:
        await t.close()


@pytest.mark.parametrize(
    ("error", "exc_type", "reason"),
    [
        ("msg_parsing_error", "EnvelopeError", "non_retryable"),
        ("processing_error", "ValidationError", "non_retryable"),
        ("connection_error", "ConnectionError", "crash_loop"),
    ],
)
async def test_non_retryable_errors_go_straight_to_the_dlq(
    tmp_path: Path, error: str, exc_type: str, reason: str
) -> None:
    settings = settings_for(tmp_path)
    t = await open_transport(settings)
    try:
        async with running("error-end", settings):
            msg = error_message("nr", ["a", "b"], 0, error=error, exc_type=exc_type, original_payload={"p": 1})
            await t.publish("asya-error-end", json.dumps(msg).encode())
            [dead] = await take(t, "asya-dlq", 1)
        assert dead["headers"][h.DLQ_REASON] == reason
        assert await t.queue_depth("asya-a") == 0
        [record] = stored(tmp_path / "store", "errors")
        assert record.parent.name == "a"
    finally:
        await t.close()


async def test_sidecar_parse_wrapper_is_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    wrapper = {
        "id": "gen-1",
        "route": {"actors": ["clean"], "current": 0},
        "headers": {},
        "payload": {
            "error": "msg_parsing_error",
            "details": {"message": "body: not valid UTF-8 JSON", "type": "EnvelopeError", "traceback": ""},
            "original_body": "{not json",
        },
    }
    t = await open_transport(settings)
    try:
        async with running("error-end", settings):
            await t.publish("asya-error-end", json.dumps(wrapper).encode())
            [dead] = await take(t, "asya-dlq", 1)
        assert dead["payload"]["original_body"] == "{not json"
        assert dead["payload"]["details"]["message"] == "body: not valid UTF-8 JSON"
        assert dead["headers"][h.DLQ_REASON] == "non_retryable"
        [record] = stored(tmp_path / "store", "errors")
        assert record.parent.name == "clean"
    finally:
        await t.close()


@pytest.mark.parametrize(
    "body",
    [b"\x00\x01garbage", b"[1, 2, 3]", b'{"id": "m", "payload": "no error here"}', b'{"payload": {"error": 1}}'],
    ids=["binary", "json-array", "no-error-field", "no-id"],
)
async def test_malformed_input_reaching_error_end_is_never_dropped(tmp_path: Path, body: bytes) -> None:
    settings = settings_for(tmp_path)
    t = await open_transport(settings)
    try:
        async with running("error-end", settings):
            await t.publish("asya-error-end", body)
            [dead] = await take(t, "asya-dlq", 1)
        assert dead["headers"][h.DLQ_REASON] in {"unparsable", "malformed"}
        assert dead["dlq"]["detail"]
        assert len(stored(tmp_path / "store", "errors")) == 1
        assert await t.queue_depth("asya-error-end") == 0
    finally:
        await t.close()
