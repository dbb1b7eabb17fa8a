"""Sidecar paths that used to requeue forever now end in a defined place (real sidecar process, real broker).

- a runtime success item without ``route`` (a foreign or buggy runtime) -> error-end, once;
- a body that is not an envelope and whose error-end wrapper is too big for the broker (SQS, 256 KiB)
  -> a slim notice on the dead-letter queue, once (RabbitMQ has no size limit, so the path does not
  exist there; the delivery-limit net for it is tested in test_safety_nets.py on every broker).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.procs import Proc, base_env, start_sidecar, wait_until

from asya import transports
from asya.contracts import encode_envelope, queue_name

pytestmark = pytest.mark.timeout(120)
RAW_RUNTIME = Path(__file__).with_name("raw_runtime.py")


def _transport_env(ts: transports.TransportSettings, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {"ASYA_TRANSPORT": ts.kind, "ASYA_TRANSPORT_URL": ts.url, "ASYA_VISIBILITY_TIMEOUT_S": "5"}
    if ts.kind == "sqs":
        env.update(request.getfixturevalue("sqs_server").env())
    return env


@pytest.fixture
def raw_pair(
    tmp_path: Path, transport_settings: transports.TransportSettings, request: pytest.FixtureRequest
) -> Iterator[Any]:
    procs: list[Proc] = []

    def start(actor: str, response: list[Any], **sidecar_env: Any) -> Proc:
        sock = Path(tempfile.mkdtemp(prefix="asya-raw-"))
        runtime = Proc(
            [sys.executable, str(RAW_RUNTIME), str(sock)],
            base_env(RAW_RESPONSE=json.dumps(response)),
            tmp_path / f"raw-{actor}.log",
        )
        wait_until(lambda: (sock / "runtime-ready").exists(), what="raw runtime ready")
        sidecar = start_sidecar(actor, sock, tmp_path, _transport_env(transport_settings, request), **sidecar_env)
        procs.extend([runtime, sidecar])
        return sidecar

    yield start
    for p in procs:
        p.stop()


async def _take_all(
    t: transports.Transport, queue: str, settle_s: float, timeout: float = 45.0
) -> list[dict[str, Any]]:
    """Everything on ``queue``: wait for the first message, then ``settle_s`` more (longer than a requeue cycle)."""
    got: list[dict[str, Any]] = []

    async def take() -> None:
        async for d in t.consume(queue, prefetch=16):
            got.append(json.loads(d.body))
            await d.ack()

    task = asyncio.create_task(take())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not got:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"nothing arrived on {queue} within {timeout}s")
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle_s)  # an observation window: a looping message would arrive again
    finally:
        task.cancel()
    return got


async def test_runtime_item_without_route_goes_to_error_end_once(
    bus: transports.Transport, raw_pair: Any, unique: str
) -> None:
    actor, error_end = f"noroute-{unique}", f"error-end-{unique}"
    raw_pair(actor, [{"payload": {"answer": 42}}], ASYA_ERROR_END_ACTOR=error_end, ASYA_MAX_DELIVERIES="3")
    await bus.ensure_queue(queue_name(actor))
    await bus.ensure_queue(queue_name(error_end))
    env = {"id": "nr-1", "route": {"actors": [actor, "next"], "current": 0}, "headers": {"k": "v"}, "payload": 1}
    await bus.publish(queue_name(actor), encode_envelope(env))
    records = await _take_all(bus, queue_name(error_end), settle_s=7.0)
    assert len(records) == 1, f"{len(records)} error-end messages: the envelope looped"
    [record] = records
    assert record["id"] == "nr-1" and record["headers"]["k"] == "v"
    assert record["payload"]["error"] == "processing_error"
    details = record["payload"]["details"]
    assert details["type"] == "EnvelopeError" and "'route'" in details["message"], details
    assert details["actor"] == actor
    assert await bus.queue_depth(queue_name(actor)) == 0


@pytest.mark.parametrize("transport_settings", [pytest.param("sqs", marks=pytest.mark.sqs)], indirect=True)
async def test_unparseable_body_too_big_to_wrap_ends_as_a_dlq_notice_once(
    bus: transports.Transport, raw_pair: Any, unique: str
) -> None:
    actor, error_end, dlq = f"toobig-{unique}", f"error-end-{unique}", f"asya-dlq-{unique}"
    raw_pair(actor, [], ASYA_ERROR_END_ACTOR=error_end, ASYA_DLQ_QUEUE=dlq)
    for q in (queue_name(actor), queue_name(error_end), dlq):
        await bus.ensure_queue(q)
    body = b'"' * (200 * 1024)  # fits SQS as it is; JSON-escaped inside a wrapper it doubles past 256 KiB
    await bus.publish(queue_name(actor), body)
    notices = await _take_all(bus, dlq, settle_s=7.0)
    assert len(notices) == 1, f"{len(notices)} notices: the body looped"
    [notice] = notices
    assert notice["id"].startswith("invalid-")
    assert notice["dlq"]["reason"] == "undeliverable"
    message = notice["payload"]["details"]["message"]
    assert "not a valid envelope" in message and "too big" in message, message
    assert await bus.queue_depth(queue_name(actor)) == 0
    assert await bus.queue_depth(queue_name(error_end)) == 0
