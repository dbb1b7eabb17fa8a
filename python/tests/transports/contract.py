"""Transport contract suite: what every transport must do, written once.

Each ``*Contract`` class is abstract (no ``Test`` prefix, so pytest does not
collect it). A transport's test module combines each with a *config mixin*:

    class SQSConfig:
        '''Tells the contracts how to build an SQS transport.'''

        @pytest.fixture(autouse=True)
        def _sqs(self, sqs_server):           # any fixtures you need
            self.server = sqs_server

        def settings(self) -> TransportSettings:                     # required
            return TransportSettings(kind="sqs", url=self.server.url,
                                     visibility_timeout_s=LEASE_S)

        async def restart_broker(self) -> None:                      # optional
            ...   # DurabilityContract also restarts the broker when this exists

    class TestSQSAckNack(SQSConfig, AckNackContract): ...

The contracts only ever call ``self.make_transport()`` (a connected transport
from ``self.settings()``, closed after the test; override it if building one
takes more) and ``self.new_queue()`` (a fresh ``asya-test-<uuid>`` queue,
created, deleted after the test), and consume through ``self.consume(t, q,
prefetch)`` so the iterator is closed after the test too. Capabilities come from the transport's class
attributes: ``DelayContract`` skips when ``supports_delay`` is False.
Transports with leases (local, SQS) should use ``visibility_timeout_s=LEASE_S``
so a message left unsettled by a dead consumer returns within the deadlines.
Every transport counts deliveries exactly: a message nacked (requeue) k
times arrives with ``attempt == k + 1`` (the consumer engine dead-letters on
that count, so "redelivered" alone is not enough).

Absence ("nothing else arrives") is checked by publishing a marker after the
fact and consuming up to it, not by sleeping; only the prefetch test bounds
a wait for a delivery that must not come (``QUIET_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from transports.helpers import DEADLINE_S, eventually, next_delivery, take, until_marker

from asya import transports
from asya.transports import Delivery, Transport

__all__ = ["DEADLINE_S", "LEASE_S", "eventually", "next_delivery", "take", "until_marker"]

LEASE_S = 2.0
"""Visibility timeout lease-based transports should use in these tests."""
QUIET_S = 0.5
"""How long the prefetch test waits for a delivery that must not arrive."""
NACKS = 3
"""How often the attempt-counting test requeues one message."""


class TransportContract:
    """Shared plumbing: transports, iterators and queues a test opens are cleaned up."""

    def settings(self) -> transports.TransportSettings:
        raise NotImplementedError("the config mixin provides settings()")

    @pytest.fixture(autouse=True)
    async def _contract_resources(self) -> AsyncIterator[None]:
        self._opened: list[Transport] = []
        self._iterators: list[AsyncIterator[Delivery]] = []
        self._queues: list[str] = []
        yield
        for it in self._iterators:
            with contextlib.suppress(Exception):
                await it.aclose()  # type: ignore[attr-defined]
        for t in self._opened:
            with contextlib.suppress(Exception):
                await t.close()
        if self._queues:
            t = transports.create(self.settings())
            await t.connect()
            for q in self._queues:
                with contextlib.suppress(Exception):
                    await t.delete_queue(q)
            await t.close()

    async def make_transport(self) -> Transport:
        t = transports.create(self.settings())
        await t.connect()
        self._opened.append(t)
        return t

    async def new_queue(self, t: Transport) -> str:
        q = f"asya-test-{uuid.uuid4().hex[:12]}"
        await t.ensure_queue(q)
        self._queues.append(q)
        return q

    def consume(self, t: Transport, q: str, prefetch: int = 10) -> AsyncIterator[Delivery]:
        it = t.consume(q, prefetch=prefetch)
        self._iterators.append(it)
        return it


class PublishConsumeContract(TransportContract):
    async def test_body_headers_and_first_attempt_arrive(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        headers = {"traceparent": "00-abc-def-01", "n": 3, "nested": {"a": [1, 2]}}
        await t.publish(q, b"hello", headers=headers)
        d = await next_delivery(self.consume(t, q))
        assert (d.body, d.queue, d.attempt) == (b"hello", q, 1)
        assert {k: d.headers.get(k) for k in headers} == headers
        await d.ack()

    async def test_binary_and_empty_bodies_round_trip(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        bodies = [bytes(range(256)), b"", b"\x00" * 10_000]
        for body in bodies:
            await t.publish(q, body)
        got = await take(self.consume(t, q), len(bodies))
        assert sorted(d.body for d in got) == sorted(bodies)

    async def test_single_consumer_gets_messages_in_publish_order(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        for i in range(20):
            await t.publish(q, str(i).encode())
        got = await take(self.consume(t, q, prefetch=5), 20)
        assert [int(d.body) for d in got] == list(range(20))

    async def test_queue_depth_counts_ready_not_in_flight(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        assert await t.queue_depth(q) == 0
        for i in range(3):
            await t.publish(q, str(i).encode())

        async def depth_is(n: int) -> bool:
            return await t.queue_depth(q) == n

        await eventually(lambda: depth_is(3))
        held = await take(self.consume(t, q, prefetch=3), 3, ack=False)
        await eventually(lambda: depth_is(0))
        for d in held:
            await d.ack()

    async def test_ensure_queue_is_idempotent_and_delete_drops_messages(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.ensure_queue(q)
        await t.publish(q, b"doomed")
        await t.delete_queue(q)
        await t.ensure_queue(q)
        assert await t.queue_depth(q) == 0

    async def test_iterator_ends_when_transport_closes(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        got: list[bytes] = []

        async def run() -> None:
            async for d in t.consume(q, prefetch=1):
                got.append(d.body)
                await d.ack()

        task = asyncio.create_task(run())
        await t.publish(q, b"one")
        await eventually(lambda: got == [b"one"])
        await t.close()
        await asyncio.wait_for(task, DEADLINE_S)


class AckNackContract(TransportContract):
    async def test_acked_message_is_gone(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"job")
        it = self.consume(t, q)
        await (await next_delivery(it)).ack()
        await t.publish(q, b"marker")
        assert await until_marker(it, b"marker") == []

    async def test_nack_requeue_redelivers_with_next_attempt(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"job")
        it = self.consume(t, q)
        attempts, ids = [], set()
        for _ in range(NACKS):
            d = await next_delivery(it)
            assert d.body == b"job"
            attempts.append(d.attempt)
            ids.add(d.message_id)
            await d.nack(requeue=True)
        last = await next_delivery(it)
        attempts.append(last.attempt)
        ids.add(last.message_id)
        assert attempts == list(range(1, NACKS + 2)), "a message nacked k times must arrive with attempt k+1"
        assert len(ids) == 1 and "" not in ids, f"one stable message id across requeues, got {ids}"
        await last.ack()

    async def test_nack_without_requeue_drops(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"poison")
        it = self.consume(t, q)
        await (await next_delivery(it)).nack(requeue=False)
        await t.publish(q, b"marker")
        assert await until_marker(it, b"marker") == []

    async def test_settling_twice_is_harmless(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"job")
        d = await next_delivery(self.consume(t, q))
        await d.ack()
        await d.ack()
        await d.nack(requeue=True)
        # The broker decides: the message is gone for good. Closing hands back anything still
        # unacked (AMQP) or leased; a marker published to show up after the lease would have
        # run out (where leases exist) must be the only thing a fresh consumer sees.
        await t.close()
        t2 = await self.make_transport()
        await t2.publish(q, b"marker", delay_s=LEASE_S + 0.5 if t2.supports_delay else 0.0)
        assert await until_marker(self.consume(t2, q), b"marker") == []
        assert await t2.queue_depth(q) == 0

    async def test_delivery_can_be_settled_after_iterator_stops(self) -> None:
        # The sidecar stops iterating on SIGTERM and acks its in-flight work afterwards.
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"in-flight")
        it = self.consume(t, q)
        d = await next_delivery(it)
        await it.aclose()  # type: ignore[attr-defined]
        await d.ack()
        await t.publish(q, b"marker")
        assert await until_marker(self.consume(t, q), b"marker") == []


class RedeliveryContract(TransportContract):
    async def test_unsettled_delivery_returns_when_consumer_goes_away(self) -> None:
        t1 = await self.make_transport()
        q = await self.new_queue(t1)
        await t1.publish(q, b"job")
        first = await next_delivery(self.consume(t1, q))
        assert first.attempt == 1
        await t1.close()  # dies holding the delivery
        t2 = await self.make_transport()
        again = await next_delivery(self.consume(t2, q), DEADLINE_S + LEASE_S)
        assert (again.body, again.attempt) == (b"job", 2)
        await again.ack()

    async def test_dropped_iterator_gives_back_what_it_did_not_yield(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        for i in range(5):
            await t.publish(q, str(i).encode())
        it = self.consume(t, q, prefetch=5)
        held = await next_delivery(it)
        await it.aclose()  # type: ignore[attr-defined]
        # The other four come to another consumer while ``held`` is still unsettled.
        other = await self.make_transport()
        rest = await take(self.consume(other, q), 4)
        assert sorted([held.body] + [d.body for d in rest]) == [b"0", b"1", b"2", b"3", b"4"]
        await held.ack()

    async def test_every_message_survives_a_consumer_crash_mid_batch(self) -> None:
        t1 = await self.make_transport()
        q = await self.new_queue(t1)
        bodies = {str(i).encode() for i in range(30)}
        for body in sorted(bodies):
            await t1.publish(q, body)
        done = {d.body for d in await take(self.consume(t1, q, prefetch=8), 10)}
        await t1.close()  # up to 8 more were prefetched and never settled
        t2 = await self.make_transport()
        rest = {d.body for d in await take(self.consume(t2, q, prefetch=8), len(bodies) - len(done))}
        assert done | rest == bodies and not done & rest


class DelayContract(TransportContract):
    async def test_delayed_message_waits_then_arrives(self) -> None:
        t = await self.make_transport()
        if not t.supports_delay:
            pytest.skip(f"{t.name} does not support delayed publish (supports_delay=False)")
        q = await self.new_queue(t)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await t.publish(q, b"later", delay_s=1.0)
        await t.publish(q, b"now")
        it = self.consume(t, q)
        first = await next_delivery(it)
        assert first.body == b"now"
        await first.ack()
        assert await t.queue_depth(q) == 0  # the delayed one is not ready yet
        second = await next_delivery(it)
        assert second.body == b"later"
        assert loop.time() - start >= 0.9
        await second.ack()


class DurabilityContract(TransportContract):
    async def test_messages_survive_reopen_and_broker_restart(self) -> None:
        t1 = await self.make_transport()
        q = await self.new_queue(t1)
        bodies = {f"m{i}".encode() for i in range(20)}
        for body in bodies:
            await t1.publish(q, body, headers={"k": "v"})
        await t1.close()
        restart = getattr(self, "restart_broker", None)
        if restart is not None:
            await restart()
        t2 = await self.make_transport()
        got = await take(self.consume(t2, q), len(bodies))
        assert {d.body for d in got} == bodies
        assert all(d.headers.get("k") == "v" for d in got)


class ConcurrencyContract(TransportContract):
    async def test_prefetch_bounds_unsettled_deliveries(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        for i in range(6):
            await t.publish(q, str(i).encode())
        it = self.consume(t, q, prefetch=3)
        held = await take(it, 3, ack=False)
        pending = asyncio.ensure_future(anext(it))
        done, _ = await asyncio.wait({pending}, timeout=QUIET_S)
        assert not done, "a 4th delivery arrived while 3 were unsettled (prefetch=3)"
        await held[0].ack()
        fourth = await asyncio.wait_for(pending, DEADLINE_S)
        for d in [*held[1:], fourth]:
            await d.ack()
        await take(it, 2)

    async def test_concurrent_publishers_and_workers_see_each_message_once(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        n, prefetch = 300, 16
        await asyncio.gather(*(t.publish(q, str(i).encode()) for i in range(n)))
        seen: list[int] = []
        in_flight = peak = 0
        finished = asyncio.Event()

        async def work(d: Delivery) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0)  # let other deliveries overlap this one
            seen.append(int(d.body))
            in_flight -= 1
            await d.ack()
            if len(seen) == n:
                finished.set()

        workers: set[asyncio.Task[None]] = set()

        async def consume() -> None:
            async for d in self.consume(t, q, prefetch=prefetch):
                worker = asyncio.create_task(work(d))
                workers.add(worker)
                worker.add_done_callback(workers.discard)

        task = asyncio.create_task(consume())
        try:
            await asyncio.wait_for(finished.wait(), DEADLINE_S)
        finally:
            task.cancel()
        assert sorted(seen) == list(range(n))
        assert peak <= prefetch
