"""RabbitMQ delayed publish (``transports._rabbitmq_delays``): TTL queues that dead-letter into the target."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from asya import transports
from asya.transports import _rabbitmq_delays, rabbitmq

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(60)]


@pytest.fixture
async def rmq(rabbitmq_server: Any) -> Any:
    t = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url))
    await t.connect()
    assert isinstance(t, rabbitmq.RabbitMQTransport)
    q = f"asya-test-{uuid.uuid4().hex[:12]}"
    await t.ensure_queue(q)
    yield t, q
    await t.delete_queue(q)
    await t.close()


async def test_delayed_message_arrives_after_its_delay_with_headers_and_in_order(rmq: Any) -> None:
    t, q = rmq
    start = time.monotonic()
    await _rabbitmq_delays.publish_delayed(t, q, b"late", headers={"k": "v"}, delay_s=0.6)
    await _rabbitmq_delays.publish_delayed(t, q, b"early", delay_s=0.2)
    await t.publish(q, b"now")
    it = t.consume(q, prefetch=5)
    got = []
    for _ in range(3):
        d = await asyncio.wait_for(anext(it), 10)
        got.append((d.body, time.monotonic() - start, dict(d.headers)))
        await d.ack()
    assert [g[0] for g in got] == [b"now", b"early", b"late"]
    assert got[1][1] >= 0.2 and got[2][1] >= 0.6
    assert got[2][2]["k"] == "v"
    assert await t.queue_depth(_rabbitmq_delays.delay_name(600)) == 0


async def test_a_deleted_delay_queue_is_declared_again(rmq: Any) -> None:
    t, q = rmq
    delay_ms = 150 + uuid.uuid4().int % 1000
    await _rabbitmq_delays.publish_delayed(t, q, b"one", delay_s=delay_ms / 1000)
    it = t.consume(q, prefetch=5)
    await (await asyncio.wait_for(anext(it), 10)).ack()
    await t.delete_queue(_rabbitmq_delays.delay_name(delay_ms))  # the cache still believes it exists
    await _rabbitmq_delays.publish_delayed(t, q, b"two", delay_s=delay_ms / 1000)
    d = await asyncio.wait_for(anext(it), 10)
    assert d.body == b"two"
    await d.ack()
