"""The engine's safety nets, on every transport: nothing loops, everything ends in a defined place.

A processor here is a small class written for the test (the engine is a library and
processors are its plug-ins); the broker is real. Each test names the path it guards:
- an unexpected exception in a processor -> its ``give_up`` place, input acked, no redelivery;
- broker/store trouble -> given back and delivered again;
- a message delivered more than ``max_deliveries`` times -> ``give_up`` with ``delivery_limit``;
- a ``give_up`` that fails too -> a notice on the dead-letter queue, input acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asya import transports
from asya.contracts import DlqReason, StorageError, queue_name
from asya.engine import Engine, EngineSettings, Failure, Verdict

pytestmark = pytest.mark.timeout(90)


class Scripted:
    """A processor whose ``process`` runs ``behaviour`` and whose ``give_up`` publishes to ``failed_queue``."""

    def __init__(self, behaviour: Any, failed_queue: str, *, give_up_raises: Exception | None = None) -> None:
        self.behaviour = behaviour
        self.failed_queue = failed_queue
        self.give_up_raises = give_up_raises
        self.attempts: list[int] = []
        self.failures: list[Failure] = []
        self.engine: Engine | None = None

    async def start(self, engine: Engine) -> None:
        self.engine = engine
        await engine.transport.ensure_queue(self.failed_queue)

    async def process(self, delivery: transports.Delivery) -> Verdict:
        self.attempts.append(delivery.attempt)
        result: Verdict = self.behaviour(delivery)
        return result

    async def give_up(self, delivery: transports.Delivery, failure: Failure) -> None:
        self.failures.append(failure)
        if self.give_up_raises is not None:
            raise self.give_up_raises
        assert self.engine is not None
        record = {"reason": failure.reason.value, "message": failure.message, "body": delivery.body.decode()}
        await self.engine.transport.publish(self.failed_queue, json.dumps(record).encode())

    def health(self) -> tuple[bool, str]:
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return True, "ok"

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def engine_running(settings: EngineSettings, processor: Scripted) -> AsyncIterator[Engine]:
    engine = Engine(settings, processor)
    task = asyncio.create_task(engine.run())
    try:
        yield engine
    finally:
        engine.stop()
        await asyncio.wait_for(task, 30)


async def take(t: transports.Transport, queue: str, timeout: float = 30.0) -> dict[str, Any]:
    await t.ensure_queue(queue)  # the engine may not have declared it yet (it starts in another task)

    async def first() -> dict[str, Any]:
        async for d in t.consume(queue, prefetch=1):
            await d.ack()
            msg: dict[str, Any] = json.loads(d.body)
            return msg
        raise AssertionError(f"{queue} closed")

    return await asyncio.wait_for(first(), timeout)


async def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def queue_empty(t: transports.Transport, queue: str, settle_s: float) -> bool:
    """Nothing ready now, and nothing comes back within ``settle_s`` (longer than the requeue/lease window)."""
    deadline = asyncio.get_running_loop().time() + settle_s
    while asyncio.get_running_loop().time() < deadline:
        if await t.queue_depth(queue) != 0:
            return False
        await asyncio.sleep(0.2)
    return True


def _settings(actor: str, ts: transports.TransportSettings, **kw: Any) -> EngineSettings:
    return EngineSettings(actor=actor, transport=ts, prefetch=4, graceful_shutdown_s=5, **kw)


async def test_unexpected_exception_goes_to_give_up_once_and_is_acked(
    bus: transports.Transport, transport_settings: transports.TransportSettings, unique: str
) -> None:
    actor, failed = f"bug-{unique}", f"asya-failed-{unique}"

    def boom(_: transports.Delivery) -> Verdict:
        raise KeyError("route")  # what a runtime item without 'route' used to raise in routing

    processor = Scripted(boom, failed)
    async with engine_running(_settings(actor, transport_settings), processor):
        await bus.ensure_queue(queue_name(actor))
        await bus.publish(queue_name(actor), b'{"id": "e1"}')
        record = await take(bus, failed)
        # the lease/requeue window of these brokers is 5 s: a given-back message would be back by then
        assert await queue_empty(bus, queue_name(actor), 6.0), "the input was not acknowledged"
    assert record["reason"] == DlqReason.PROCESSOR_ERROR.value
    assert "KeyError" in record["message"] and "route" in record["message"]
    assert processor.attempts == [1], "processed more than once: the bad message looped"


async def test_broker_or_store_trouble_gives_the_delivery_back(
    bus: transports.Transport, transport_settings: transports.TransportSettings, unique: str
) -> None:
    actor, failed = f"trouble-{unique}", f"asya-failed-{unique}"
    seen: list[int] = []

    def flaky(d: transports.Delivery) -> Verdict:
        seen.append(d.attempt)
        if len(seen) == 1:
            raise StorageError("the store is down for a moment")
        return Verdict.ACK

    processor = Scripted(flaky, failed)
    async with engine_running(_settings(actor, transport_settings), processor):
        await bus.ensure_queue(queue_name(actor))
        await bus.publish(queue_name(actor), b'{"id": "e2"}')
        await wait_for(lambda: len(seen) >= 2, what="a second delivery after the trouble")
        assert await queue_empty(bus, queue_name(actor), 6.0)
    assert seen[:2] == [1, 2], f"delivery counts {seen}"
    assert processor.failures == []


async def test_a_message_delivered_too_often_is_taken_away_with_delivery_limit(
    bus: transports.Transport, transport_settings: transports.TransportSettings, unique: str
) -> None:
    actor, failed = f"limit-{unique}", f"asya-failed-{unique}"
    processor = Scripted(lambda _d: Verdict.GIVE_BACK, failed)  # never finishes: would loop forever
    async with engine_running(_settings(actor, transport_settings, max_deliveries=3), processor):
        await bus.ensure_queue(queue_name(actor))
        await bus.publish(queue_name(actor), b'{"id": "e3", "payload": null}')
        record = await take(bus, failed)
        assert await queue_empty(bus, queue_name(actor), 6.0)
    assert record["reason"] == DlqReason.DELIVERY_LIMIT.value
    assert "ASYA_MAX_DELIVERIES=3" in record["message"]
    assert processor.attempts == [1, 2, 3], f"the processor saw deliveries {processor.attempts}"
    assert json.loads(record["body"])["id"] == "e3"


async def test_a_failing_failure_path_ends_as_a_notice_on_the_dead_letter_queue(
    bus: transports.Transport, transport_settings: transports.TransportSettings, unique: str
) -> None:
    actor, dlq = f"double-{unique}", f"asya-dlq-{unique}"

    def boom(_: transports.Delivery) -> Verdict:
        raise TypeError("a bug")

    processor = Scripted(boom, f"asya-unused-{unique}", give_up_raises=ValueError("error-end refused it"))
    async with engine_running(_settings(actor, transport_settings, dlq=dlq), processor):
        await bus.ensure_queue(queue_name(actor))
        await bus.ensure_queue(dlq)
        await bus.publish(queue_name(actor), b'{"id": "e4", "route": {"actors": ["x"], "current": 0}, "payload": 1}')
        notice = await take(bus, dlq)
        assert await queue_empty(bus, queue_name(actor), 6.0)
    assert notice["id"] == "e4"
    assert notice["dlq"]["reason"] == DlqReason.PROCESSOR_ERROR.value
    assert "TypeError" in notice["payload"]["details"]["message"]
    assert processor.attempts == [1]
