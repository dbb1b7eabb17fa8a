"""RabbitMQ delayed publish (``transports._rabbitmq_delays``): TTL queues that dead-letter into the target."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika
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


K_CRASH = 200
"""Retries waiting in delay queues when the broker is SIGKILLed."""
FIRST_EXPIRY_MS = 8000
"""Shortest delay of those retries; the kill comes 1 s after it, while the others expire."""


@pytest.mark.timeout(180)
async def test_every_delayed_message_survives_a_kill_9_of_the_broker(rmq: Any, rabbitmq_server: Any) -> None:
    # Classic delay queues dead-letter at most once: whatever expires in the moments before the
    # kill is gone from the delay queue and not yet safe in the target. So the delays are spread
    # across the kill (8-10 s, the kill at ~9 s) and some expire on each side of it. The first expiry is
    # far enough out that publishing and counting 200 retries fits before it on a loaded 2-core machine.
    t, q = rmq
    delays_ms = [FIRST_EXPIRY_MS + 100 * (i % 20) for i in range(K_CRASH)]
    expected = {f"retry-{i}".encode() for i in range(K_CRASH)}
    await _rabbitmq_delays.predeclare(t, [ms / 1000 for ms in delays_ms])
    start = time.monotonic()
    await asyncio.gather(
        *(
            _rabbitmq_delays.publish_delayed(t, q, f"retry-{i}".encode(), delay_s=ms / 1000)
            for i, ms in enumerate(delays_ms)
        )
    )
    parked = sum([await t.queue_depth(_rabbitmq_delays.delay_name(ms)) for ms in sorted(set(delays_ms))])
    assert time.monotonic() - start < FIRST_EXPIRY_MS / 1000, (
        "too slow to count the parked messages before the first expiry"
    )
    assert parked == K_CRASH  # all confirmed and waiting before the kill
    await asyncio.sleep(max(0.0, FIRST_EXPIRY_MS / 1000 + 1.0 - (time.monotonic() - start)))  # into the expiry window
    await asyncio.to_thread(rabbitmq_server.crash)
    await asyncio.to_thread(rabbitmq_server.start)
    seen: set[bytes] = set()
    it = t.consume(q, prefetch=50)
    try:
        while seen != expected:
            d = await asyncio.wait_for(anext(it), 60)
            seen.add(d.body)
            await d.ack()
    except TimeoutError:
        pytest.fail(f"{len(expected - seen)} of {K_CRASH} delayed messages never came back after kill -9")
    finally:
        await it.aclose()  # type: ignore[attr-defined]


async def test_old_classic_delay_queues_do_not_break_an_upgrade(rmq: Any) -> None:
    # A broker that ran the previous release still has classic asya-delay-<ms> queues (and their
    # exchanges); declaring a quorum queue under that name would fail with PRECONDITION_FAILED.
    t, q = rmq
    delay_ms = 200 + uuid.uuid4().int % 1000
    old = f"asya-delay-{delay_ms}"
    channel = await t._conn().channel()
    exchange = await channel.declare_exchange(old, aio_pika.ExchangeType.FANOUT, durable=True, auto_delete=True)
    queue = await channel.declare_queue(
        old,
        durable=True,
        arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-expires": delay_ms + 300_000,
            "x-queue-type": "classic",
        },
    )
    await queue.bind(exchange)
    try:
        await _rabbitmq_delays.publish_delayed(t, q, b"after-upgrade", delay_s=delay_ms / 1000)
        it = t.consume(q, prefetch=1)
        d = await asyncio.wait_for(anext(it), 10)
        assert d.body == b"after-upgrade"
        await d.ack()
        await it.aclose()  # type: ignore[attr-defined]
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await channel.close()


async def test_delay_queues_never_expire_with_retries_parked_in_them(rmq: Any) -> None:
    # An x-expires queue is deleted with its messages, and RabbitMQ 3.10 does not renew a quorum
    # queue's expiry on re-declare: an error-end older than the expiry lost the retries parked at
    # that moment (3 of 10,000 in a conservation run). The broker itself says what the queue has:
    # a declare whose arguments differ from the existing queue's (an x-expires more or less
    # included) fails with PRECONDITION_FAILED.
    t, q = rmq
    delay_ms = 1200 + uuid.uuid4().int % 1000
    await _rabbitmq_delays.publish_delayed(t, q, b"parked", delay_s=delay_ms / 1000)
    name = t.topology.broker(_rabbitmq_delays.delay_name(delay_ms))
    expected = {
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-queue-type": "quorum",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    channel = await t._conn().channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=expected)  # raises if it expires
    finally:
        if not channel.is_closed:
            await channel.close()
    it = t.consume(q, prefetch=1)
    d = await asyncio.wait_for(anext(it), 10)
    assert d.body == b"parked"
    await d.ack()
    await it.aclose()  # type: ignore[attr-defined]
