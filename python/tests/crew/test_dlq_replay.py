"""``asya dlq``: dead letters are listed, shown, and replayed with a fresh budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from crew_helpers import error_message, eventually, open_transport, running, settings_for, stored, take
from support.procs import base_env

from asya import storage
from asya.contracts import headers as h
from asya.contracts.envelope import encode_envelope
from asya.crew import dlq
from asya.crew.settings import RetrySettings

pytestmark = pytest.mark.timeout(60)


async def test_list_show_replay_then_the_fixed_actor_s_result_is_stored(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, retry=RetrySettings(max_attempts=1))
    store = storage.create_store(settings.storage_url)
    t = await open_transport(settings)
    headers = {"traceparent": "tp", h.RETRY_ATTEMPT: 1, h.RETRY_STEP: 1}
    try:
        async with running("error-end", settings), running("happy-end", settings):
            msg = error_message("d-1", ["a", "b"], 1, headers=headers, original_payload={"v": 1}, extra="kept")
            await t.publish("asya-error-end", json.dumps(msg).encode())
            await t.publish("asya-error-end", b"not even json")
            await take(t, "asya-dlq", 2)

            infos = await dlq.list_dead_letters(store)
            assert sorted((i.actor, i.reason) for i in infos) == [
                ("b", "budget_exhausted"),
                ("error-end", "unparsable"),
            ]
            assert [i.id for i in await dlq.list_dead_letters(store, actor="b")] == ["d-1"]
            record = await dlq.show(store, "d-1")
            assert record["payload"]["details"]["message"] == "boom"

            outcomes = await dlq.replay(store, t, [i.key for i in infos])
            by_id = {o.id: o for o in outcomes}
            assert by_id["d-1"].queue == "asya-b"
            [unreadable] = [o for o in outcomes if o.id != "d-1"]
            assert unreadable.queue is None and "JSON" in (unreadable.problem or "")

            [env] = await take(t, "asya-b", 1)
            assert env["payload"] == {"v": 1} and env["extra"] == "kept" and "dlq" not in env
            assert env["route"]["current"] == 1
            assert env["headers"]["traceparent"] == "tp"
            assert env["headers"][h.REPLAYED] == 1
            assert h.RETRY_ATTEMPT not in env["headers"] and h.DLQ_REASON not in env["headers"]

            # the fixed actor b now succeeds: its output goes to happy-end
            env["route"]["current"] = 2
            await t.publish("asya-happy-end", encode_envelope(env))
            [result] = await eventually(lambda: stored(tmp_path / "store"), what="result of the replay")
        assert json.loads(result.read_bytes())["id"] == "d-1"
        remaining = await dlq.list_dead_letters(store)
        assert [i.actor for i in remaining] == ["error-end"]  # the unreplayable one stays
        assert len(await store.list_keys(dlq.REPLAYED_PREFIX)) == 1
    finally:
        await t.close()


async def test_cli_lists_shows_and_replays_a_dev_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = settings_for(tmp_path, transport_url=str(out / "queues"), storage_url=(out / "results").as_uri())
    t = await open_transport(settings)
    try:
        async with running("error-end", settings):
            bad = error_message("cli-1", ["x"], 0, error="msg_parsing_error", original_payload=3)
            await t.publish("asya-error-end", json.dumps(bad).encode())
            await take(t, "asya-dlq", 1)

        def asya(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "asya.cli", "dlq", *args, "--out", str(out)],
                env=base_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )

        listed = asya("list")
        assert listed.returncode == 0, listed.stderr
        assert "cli-1" in listed.stdout and "non_retryable" in listed.stdout
        shown = asya("show", "cli-1")
        assert json.loads(shown.stdout)["payload"]["original_payload"] == 3
        replayed = asya("replay", "cli-1")
        assert replayed.returncode == 0, replayed.stderr
        assert "asya-x" in replayed.stdout
        [env] = await take(t, "asya-x", 1)
        assert env["payload"] == 3
        assert "0 dead letter(s)" in asya("list").stdout
    finally:
        await t.close()
