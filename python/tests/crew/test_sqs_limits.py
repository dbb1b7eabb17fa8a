"""On SQS's 256 KiB limit, a dead letter too big for the queue is stored whole and announced slim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crew_helpers import error_message, open_transport, running, settings_for, stored, take_id
from fixtures.sqs import SQSServer

from asya.transports import sqs as sqs_transport

pytestmark = [pytest.mark.sqs, pytest.mark.timeout(90)]


async def test_oversized_dead_letter_is_stored_whole_and_noticed_on_the_dlq(
    tmp_path: Path, sqs_server: SQSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in sqs_server.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    settings = settings_for(tmp_path, transport="sqs", transport_url=sqs_server.url, visibility_timeout_s=10.0)
    msg = error_message("huge", ["a"], 0, error="msg_parsing_error", original_payload="")
    room = sqs_transport.MAX_MESSAGE_BYTES - len(json.dumps(msg).encode()) - 64
    msg["payload"]["original_payload"] = "p" * room  # fits SQS, its dead letter (a few headers more) does not
    t = await open_transport(settings, wait_time_s="2")
    try:
        for q in ("asya-error-end", "asya-dlq"):
            await t.ensure_queue(q)
        async with running("error-end", settings):
            await t.publish("asya-error-end", json.dumps(msg).encode())
            notice = await take_id(t, "asya-dlq", "huge")
        assert notice["id"] == "huge" and notice["stored_uri"].startswith("file://")
        assert notice["payload"]["error"] == "msg_parsing_error" and "original_payload" not in notice["payload"]
        [record] = stored(tmp_path / "store", "errors")
        assert json.loads(record.read_bytes())["payload"]["original_payload"] == "p" * room
        assert await t.queue_depth("asya-error-end") == 0
    finally:
        await t.close()
