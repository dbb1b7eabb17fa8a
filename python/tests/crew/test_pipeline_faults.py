"""Issue 3's faults -> outcomes, end to end: real sidecar + runtime per actor, real crew, real broker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from crew_pipeline import PipelineRun, scan, wait_accounted

from asya import storage, transports
from asya.contracts import headers as h
from asya.contracts.envelope import encode_envelope, queue_name
from asya.crew import dlq

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(180)]
# (the crash-loop test also runs on SQS: there the delivery count is ApproximateReceiveCount)


async def _start_run(tmp_path: Path, transport_env: dict[str, str]):  # type: ignore[no-untyped-def]
    run = PipelineRun(
        tmp_path,
        transport_env,
        (tmp_path / "store").as_uri(),
        ASYA_RETRY_MAX_ATTEMPTS=3,
        ASYA_RETRY_BACKOFF_BASE_S=0.05,
    )
    t = transports.create(
        transports.TransportSettings(kind=transport_env["ASYA_TRANSPORT"], url=transport_env["ASYA_TRANSPORT_URL"])
    )
    await t.connect()
    for q in ("happy-end", "error-end"):
        await t.ensure_queue(queue_name(q))
    run.start_crew()
    return run, t


@pytest.fixture
async def rabbit_run(tmp_path: Path, rabbitmq_server: object):  # type: ignore[no-untyped-def]
    url = rabbitmq_server.url  # type: ignore[attr-defined]
    run, t = await _start_run(tmp_path, {"ASYA_TRANSPORT": "rabbitmq", "ASYA_TRANSPORT_URL": url})
    try:
        yield run, t
    finally:
        run.stop()
        await t.close()


@pytest.fixture(params=["rabbitmq", pytest.param("sqs", marks=pytest.mark.sqs)])
async def any_run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if request.param == "rabbitmq":
        env = {"ASYA_TRANSPORT": "rabbitmq", "ASYA_TRANSPORT_URL": request.getfixturevalue("rabbitmq_server").url}
    else:
        env = {**request.getfixturevalue("sqs_server").env(), "ASYA_VISIBILITY_TIMEOUT_S": "10"}
        for key, value in env.items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)
    run, t = await _start_run(tmp_path, env)
    try:
        yield run, t
    finally:
        run.stop()
        await t.close()


def _env(env_id: str, actors: list[str], payload: object = None) -> dict[str, object]:
    return {"id": env_id, "route": {"actors": actors, "current": 0}, "headers": {}, "payload": payload}


async def test_handler_that_always_raises_gets_exactly_the_budget_then_dlq(rabbit_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, t = rabbit_run
    calls = tmp_path / "calls.txt"
    x = run.actor("x")
    await t.ensure_queue(queue_name(x))
    run.start_actor(x, "crew.faulty_handlers.always_fails", runtime_env={"CALLS_FILE": calls})
    await t.publish(queue_name(x), encode_envelope(_env("always-1", [x], {"k": 1})))
    await asyncio.to_thread(wait_accounted, tmp_path / "store", {"always-1"}, 60, run)
    _, dead = scan(tmp_path / "store", {"always-1"})
    record = json.loads(dead["always-1"][0].read_bytes())
    assert record["headers"][h.DLQ_REASON] == "budget_exhausted"
    assert record["payload"]["original_payload"] == {"k": 1}
    assert record["payload"]["details"]["type"] == "RuntimeError"
    assert calls.read_text().count("call") == 3  # ASYA_RETRY_MAX_ATTEMPTS=3, not one more


async def test_handler_that_kills_its_process_reaches_the_dlq_after_max_deliveries(any_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, t = any_run
    x = run.actor("crash")
    await t.ensure_queue(queue_name(x))
    run.start_actor(x, "crew.faulty_handlers.crash", sidecar_env={"ASYA_MAX_DELIVERIES": 3})
    run.restart_dead_runtimes()
    await t.publish(queue_name(x), encode_envelope(_env("crash-1", [x])))
    await asyncio.to_thread(wait_accounted, tmp_path / "store", {"crash-1"}, 90, run)
    _, dead = scan(tmp_path / "store", {"crash-1"})
    record = json.loads(dead["crash-1"][0].read_bytes())
    assert record["payload"]["error"] == "connection_error"
    assert record["headers"][h.DLQ_REASON] == "crash_loop"
    # The handler took its process down on each of the 3 deliveries; the dead letter can be
    # stored before our stand-in kubelet has restarted the runtime the third time.
    deadline = time.monotonic() + 30
    while run.restarts < 3:
        assert time.monotonic() < deadline, f"runtime restarted {run.restarts} times, expected 3"
        await asyncio.sleep(0.1)


async def test_malformed_input_is_dead_lettered_with_its_reason(rabbit_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, t = rabbit_run
    x = run.actor("m")
    await t.ensure_queue(queue_name(x))
    run.start_actor(x, "support.handlers.echo")
    await t.publish(queue_name(x), b"{this is not json")
    root = tmp_path / "store"

    def dead_letters() -> list[dict[str, object]]:
        return [json.loads(p.read_bytes()) for p in (root / "errors").rglob("*.json")] if root.exists() else []

    deadline = time.monotonic() + 60
    while not dead_letters():
        assert time.monotonic() < deadline, run.logs_text()
        await asyncio.sleep(0.1)
    [record] = dead_letters()
    assert record["payload"]["error"] == "msg_parsing_error"  # type: ignore[index]
    assert record["payload"]["original_body"] == "{this is not json"  # type: ignore[index]
    assert record["headers"][h.DLQ_REASON] == "non_retryable"  # type: ignore[index]


async def test_dlq_replay_of_a_fixed_actor_stores_the_result(rabbit_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, t = rabbit_run
    fix = tmp_path / "fixed"
    a, b = run.actor("a"), run.actor("b")
    for actor in (a, b):
        await t.ensure_queue(queue_name(actor))
    run.start_actor(a, "support.handlers.add_one")
    run.start_actor(b, "crew.faulty_handlers.fixed_after_file", runtime_env={"FIX_FILE": fix})
    root = tmp_path / "store"
    await t.publish(queue_name(a), encode_envelope(_env("replay-1", [a, b], {"n": 1})))
    await asyncio.to_thread(wait_accounted, root, {"replay-1"}, 60, run)
    store = storage.create_store(root.as_uri())
    [info] = await dlq.list_dead_letters(store)
    assert (info.id, info.actor, info.reason) == ("replay-1", b, "budget_exhausted")

    fix.touch()  # the deploy that fixes actor b
    [outcome] = await dlq.replay(store, t, ["replay-1"])
    assert outcome.queue == queue_name(b)
    deadline = time.monotonic() + 60
    while not scan(root, {"replay-1"})[0]:
        assert time.monotonic() < deadline, run.logs_text()
        await asyncio.sleep(0.1)
    results, dead = scan(root, {"replay-1"})
    result = json.loads(results["replay-1"][0].read_bytes())
    assert result["payload"]["fixed"] is True and result["payload"]["n"] == 2
    assert result["headers"][h.REPLAYED] == 1
    assert not dead and await dlq.list_dead_letters(store) == []
