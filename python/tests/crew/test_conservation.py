"""Conservation: N envelopes through 3 actors with transient and permanent faults, nothing lost or doubled.

Issue 3's target: 10 % of handler calls fail transiently, 1 % of envelopes fail
permanently; every envelope ends as exactly one stored result or exactly one
dead letter. Real sidecar + runtime processes per actor, real crew processes,
real brokers (RabbitMQ, ElasticMQ); storage is a folder so the accounting reads
it directly (S3 storage has its own tests). ``ASYA_CONSERVATION_N`` overrides N.

Lost and duplicated are counted, not assumed: per id, the objects stored and the
crew's final reports to a recording gateway (``crew_pipeline.account``). A test
that publishes one final envelope twice checks that the count sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from crew_pipeline import PipelineRun, RecordingGateway, account, local_held, wait_accounted, wait_until

from asya import transports
from asya.contracts.envelope import HAPPY_END, encode_envelope, queue_name

N = int(os.environ.get("ASYA_CONSERVATION_N", "1000"))
GATEWAY = os.environ.get("ASYA_CONSERVATION_GATEWAY", "on") != "off"
"""Final reports to a recording gateway, counted too; ``make bench`` turns it off to time the same work as 0.2.0-dev."""
PERMANENT_EVERY = 100
"""Every 100th envelope fails permanently at the middle actor (1 %)."""

pytestmark = pytest.mark.timeout(600)


def _transport_env(kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if kind == "rabbitmq":
        server = request.getfixturevalue("rabbitmq_server")
        return {"ASYA_TRANSPORT": "rabbitmq", "ASYA_TRANSPORT_URL": server.url}
    server = request.getfixturevalue("sqs_server")
    return {**server.env(), "ASYA_VISIBILITY_TIMEOUT_S": "30"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", [pytest.param("rabbitmq", marks=pytest.mark.rabbitmq), pytest.param("sqs", marks=pytest.mark.sqs)]
)
async def test_every_envelope_is_a_result_or_a_dead_letter_exactly_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _transport_env(kind, request)
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    store = tmp_path / "store"
    run = PipelineRun(
        tmp_path,
        env,
        store.as_uri(),
        ASYA_RETRY_MAX_ATTEMPTS=3,
        ASYA_RETRY_BACKOFF_BASE_S=0.05,
        ASYA_RETRY_BACKOFF_MAX_S=0.5,
        ASYA_PREFETCH=64,
    )
    a, b, c = run.actor("a"), run.actor("b"), run.actor("c")
    ids = {f"cons-{run.suffix}-{i:05d}" for i in range(N)}
    t = transports.create(transports.TransportSettings(kind=kind, url=env["ASYA_TRANSPORT_URL"]))
    await t.connect()
    with RecordingGateway() if GATEWAY else contextlib.nullcontext() as gateway:
        try:
            for actor in (a, b, c, "happy-end", "error-end"):
                await t.ensure_queue(queue_name(actor))
            run.start_crew(gateway)
            for actor in (a, b, c):
                run.start_actor(
                    actor,
                    "crew.faulty_handlers.flaky",
                    runtime_env={"FLAKY_RATE": "0.1"},
                    sidecar_env={"ASYA_PREFETCH": 32},
                )
            started = time.monotonic()

            async def feed(i: int) -> None:
                payload: dict[str, Any] = {"i": i}
                if i % PERMANENT_EVERY == 7:
                    payload["permanent_at"] = b
                envelope = {
                    "id": f"cons-{run.suffix}-{i:05d}",
                    "route": {"actors": [a, b, c], "current": 0},
                    "headers": {"x-test": "conservation"},
                    "payload": payload,
                }
                await t.publish(queue_name(a), encode_envelope(envelope))

            gate = asyncio.Semaphore(32)

            async def gated(i: int) -> None:
                async with gate:
                    await feed(i)

            await asyncio.gather(*(gated(i) for i in range(N)))
            await asyncio.to_thread(wait_accounted, store, ids, 420, run)
            elapsed = time.monotonic() - started

            # quiesce: nothing left in flight that could still add a second copy
            async def idle() -> bool:
                depths = [await t.queue_depth(queue_name(x)) for x in (a, b, c, "happy-end", "error-end")]
                return not any(depths)

            deadline = time.monotonic() + 60
            while not await idle():
                assert time.monotonic() < deadline, "queues did not drain"
                await asyncio.sleep(0.2)
            run.stop()  # the crew flushes its reports on SIGTERM: after this none is still on its way
            tally = account(store, ids, gateway)
        finally:
            run.stop()
            await t.close()

    results, dead = tally.results, tally.dead
    assert not tally.unreported, (
        f"{len(tally.unreported)} stored id(s) never reported, e.g. {sorted(tally.unreported)[:5]}"
    )
    assert not tally.duplicated, f"{len(tally.duplicated)} id(s) stored or reported more than once, e.g. " + ", ".join(
        f"{i}: {tally.finals[i]} report(s)" for i in sorted(tally.duplicated)[:5]
    )
    assert not tally.lost, f"{len(tally.lost)} id(s) lost, e.g. {sorted(tally.lost)[:5]}"
    permanent = {f"cons-{run.suffix}-{i:05d}" for i in range(N) if i % PERMANENT_EVERY == 7}
    assert permanent <= set(dead), "a permanently failing envelope was not dead-lettered"
    records = {i: json.loads(dead[i][0].read_bytes()) for i in set(dead)}
    # Every ValidationError goes straight to the DLQ. (A permanent envelope may, rarely, exhaust
    # its budget on transient glitches at an earlier step before reaching its failing step.)
    validation = {i: r for i, r in records.items() if str(r["payload"]["details"]["type"]).endswith("ValidationError")}
    assert {r["headers"]["x-asya-dlq-reason"] for r in validation.values()} <= {"non_retryable"}, (
        "a ValidationError was retried"
    )
    assert len(validation) >= len(permanent) - max(2, N // 200), "permanent failures did not reach their step"
    exhausted = set(dead) - permanent
    report = os.environ.get("ASYA_CONSERVATION_JSON")
    if report:  # `make bench` runs this test with N=10,000 and keeps the figures
        figures = {
            "transport": kind,
            "n": N,
            "seconds": round(elapsed, 1),
            "envelopes_per_s": round(N / elapsed, 1),
            "results": len(results),
            "dead_letters": len(dead),
            "permanent": len(permanent),
            "budget_exhausted": len(exhausted),
            "lost": len(tally.lost),
            "duplicated": len(tally.duplicated),
            "gateway_reports": GATEWAY,
        }
        Path(report).write_text(json.dumps(figures, indent=2))
    print(
        f"\nconservation on {kind}: N={N} in {elapsed:.1f}s ({N / elapsed:.0f} env/s): "
        f"{len(results)} results, {len(dead)} dead letters ({len(permanent)} permanent, "
        f"{len(exhausted)} budget exhausted), {len(tally.lost)} lost, {len(tally.duplicated)} duplicated"
        f"{'' if GATEWAY else ' (no gateway reports)'}"
    )
    # 3 attempts per step at a 10 % failure rate: ~0.1 % of envelopes per step may exhaust the budget
    assert len(exhausted) <= max(5, N // 50)


async def test_accounting_counts_a_final_envelope_published_twice(tmp_path: Path) -> None:
    """The same final envelope reaches happy-end twice: stored once (same key), counted as duplicated."""
    queues = tmp_path / "queues"
    env = {"ASYA_TRANSPORT": "local", "ASYA_TRANSPORT_URL": str(queues)}
    store = tmp_path / "store"
    run = PipelineRun(tmp_path, env, store.as_uri())
    sent = [f"dup-{run.suffix}-{i}" for i in range(5)]
    never_sent = f"dup-{run.suffix}-never"
    twice = sent[2]
    t = transports.create(transports.TransportSettings(kind="local", url=str(queues)))
    await t.connect()
    try:
        with RecordingGateway() as gateway:
            run.start_crew(gateway)
            for env_id in [*sent, twice]:
                final = {"id": env_id, "route": {"actors": ["z"], "current": 1}, "headers": {}, "payload": env_id}
                await t.publish(queue_name(HAPPY_END), encode_envelope(final))
            await asyncio.to_thread(wait_accounted, store, set(sent), 30, run)
            # every delivery settled (not just hidden behind a lease): happy-end has handled both copies
            await asyncio.to_thread(
                wait_until, lambda: local_held(str(queues), queue_name(HAPPY_END)) == 0, 30, what="happy-end drained"
            )
            run.stop()
            tally = account(store, {*sent, never_sent}, gateway)
    finally:
        run.stop()
        await t.close()
    assert [len(tally.results[i]) for i in sent] == [1] * len(sent), "same key: the second store overwrote the first"
    assert tally.duplicated == {twice}
    assert tally.finals[twice] == 2
    assert tally.lost == {never_sent}
    assert not tally.unreported
