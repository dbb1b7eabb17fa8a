"""The ``local`` (SQLite) transport: the shared contracts, plus leases and several processes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import queue as queue_module
import socket
import sqlite3
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from transports.contract import (
    DEADLINE_S,
    LEASE_S,
    AckNackContract,
    ConcurrencyContract,
    DelayContract,
    DurabilityContract,
    PublishConsumeContract,
    RedeliveryContract,
    TransportContract,
    next_delivery,
    take,
    until_marker,
)

from asya import transports
from asya.contracts.errors import TransportError
from asya.transports import TransportSettings, _doorbell, local


class LocalConfig:
    """Config mixin: a fresh queue directory per test."""

    @pytest.fixture(autouse=True)
    def _local_dir(self, tmp_path: Path) -> None:
        self.queue_dir = tmp_path / "queues"

    def settings(self) -> TransportSettings:
        return TransportSettings(kind="local", url=str(self.queue_dir), visibility_timeout_s=LEASE_S)


class TestLocalPublishConsume(LocalConfig, PublishConsumeContract): ...


class TestLocalAckNack(LocalConfig, AckNackContract): ...


class TestLocalRedelivery(LocalConfig, RedeliveryContract): ...


class TestLocalDelay(LocalConfig, DelayContract): ...


class TestLocalDurability(LocalConfig, DurabilityContract): ...


class TestLocalConcurrency(LocalConfig, ConcurrencyContract): ...


class TestLocalLeases(LocalConfig, TransportContract):
    def settings(self) -> TransportSettings:
        return TransportSettings(kind="local", url=str(self.queue_dir), visibility_timeout_s=0.3)

    async def test_lease_expiry_redelivers_to_another_consumer(self) -> None:
        stuck = await self.make_transport()
        q = await self.new_queue(stuck)
        await stuck.publish(q, b"job")
        first = await next_delivery(self.consume(stuck, q))  # never settled, transport never closed
        other = await self.make_transport()
        again = await next_delivery(self.consume(other, q))
        assert (again.body, again.attempt) == (b"job", 2)
        await again.ack()
        await first.ack()  # a stale lease: must not touch the message anyone else holds
        await other.publish(q, b"marker")
        assert await until_marker(self.consume(other, q), b"marker") == []

    async def test_extend_keeps_the_message_hidden(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"slow")
        it = self.consume(t, q)
        d = await next_delivery(it)
        for _ in range(4):  # 4 x 0.2 s > the 0.3 s lease
            await d.extend(1.0)
            await asyncio.sleep(0.2)
            assert await t.queue_depth(q) == 0
        await d.ack()
        await t.publish(q, b"marker")
        assert await until_marker(it, b"marker") == []

    async def test_publish_creates_unknown_queue(self) -> None:
        t = await self.make_transport()
        await t.publish("asya-never-declared", b"x")
        assert await t.queue_depth("asya-never-declared") == 1

    async def test_default_directory_when_url_is_empty(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        t = transports.create(TransportSettings(kind="local"))
        await t.connect()
        await t.publish("q", b"x")
        await t.close()
        assert (tmp_path / ".asya" / "queues").is_dir()


class TestLocalFailures(LocalConfig, TransportContract):
    async def test_sqlite_failures_are_transport_errors(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"job")
        d = await next_delivery(self.consume(t, q))
        # Another process breaks the queue file under us (here: drops its tables).
        with sqlite3.connect(self.queue_dir / local.DB_FILE) as other:
            other.executescript("DROP TABLE messages; DROP TABLE queues;")
        ops = {
            "publish": lambda: t.publish(q, b"x"),
            "ensure_queue": lambda: t.ensure_queue(q),
            "delete_queue": lambda: t.delete_queue(q),
            "queue_depth": lambda: t.queue_depth(q),
            "ack": d.ack,
            "consume": lambda: anext(t.consume(q, prefetch=1)),
        }
        for name, op in ops.items():
            with pytest.raises(TransportError) as info:
                await op()
            assert isinstance(info.value.__cause__, sqlite3.Error), name

    async def test_a_publish_stuck_behind_another_writer_times_out_as_a_transport_error(self) -> None:
        t = transports.create(dataclasses.replace(self.settings(), publish_timeout_s=0.5))
        await t.connect()
        self._opened.append(t)
        q = await self.new_queue(t)
        other = sqlite3.connect(self.queue_dir / local.DB_FILE, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock (busy_timeout is 30 s)
        try:
            start = asyncio.get_running_loop().time()
            with pytest.raises(TransportError, match="not committed within"):
                await t.publish(q, b"stuck")
            assert asyncio.get_running_loop().time() - start < DEADLINE_S
        finally:
            other.execute("ROLLBACK")
            other.close()


def test_a_doorbell_that_cannot_ring_warns_once(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="asya.transports.local")
    name = f"asya-test-bell-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as deaf:  # a listener that never reads
        deaf.bind("\0" + name)
        bell = _doorbell.Doorbell(tmp_path / "q.sqlite3", lambda _q: None)
        try:
            for _ in range(500):  # far more than a datagram socket queues
                assert bell.ring([name], "asya-q") == []
        finally:
            bell.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "asya.transports.local"]
    assert len(warnings) == 1 and name in warnings[0], warnings


# --- several OS processes on one queue file ---

N_MESSAGES = 400
STOP = b"stop"


def _produce(directory: str, q: str, start: Barrier) -> None:
    start.wait(DEADLINE_S)

    async def main() -> None:
        t = transports.create(TransportSettings(kind="local", url=directory))
        await t.connect()
        await asyncio.gather(*(t.publish(q, str(i).encode()) for i in range(N_MESSAGES)))
        for _ in range(2):  # one stop marker per consumer, after all the work
            await t.publish(q, STOP)
        await t.close()

    asyncio.run(main())


def _consume(directory: str, q: str, start: Barrier, out: multiprocessing.Queue[list[int]]) -> None:
    async def main() -> list[int]:
        t = transports.create(TransportSettings(kind="local", url=directory, visibility_timeout_s=60))
        await t.connect()
        seen = []
        start.wait(DEADLINE_S)  # both consumers are up before the producer starts
        async for d in t.consume(q, prefetch=8):
            await asyncio.sleep(0.0005)  # a little work, so the two consumers interleave
            await d.ack()
            if d.body == STOP:
                break
            seen.append(int(d.body))
        await t.close()
        return seen

    out.put(asyncio.run(main()))


async def test_two_consumer_processes_and_a_producer_share_the_file(tmp_path: Path) -> None:
    directory, q = str(tmp_path / "queues"), "asya-shared"
    ctx = multiprocessing.get_context("spawn")  # no fork: the parent runs threads and an event loop
    results: multiprocessing.Queue[list[int]] = ctx.Queue()
    start = ctx.Barrier(3)
    consumers = [ctx.Process(target=_consume, args=(directory, q, start, results)) for _ in range(2)]
    producer = ctx.Process(target=_produce, args=(directory, q, start))
    for p in [*consumers, producer]:
        p.start()
    try:
        batches = [await asyncio.to_thread(results.get, True, DEADLINE_S * 2) for _ in consumers]
    except queue_module.Empty:
        pytest.fail("a consumer process did not finish in time")
    finally:
        for p in [*consumers, producer]:
            p.join(DEADLINE_S)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in [*consumers, producer])
    everything = sorted(batches[0] + batches[1])
    assert everything == list(range(N_MESSAGES)), "lost or duplicated messages"
    assert all(batches), "one consumer got no work at all"
    t = transports.create(TransportSettings(kind="local", url=directory))
    await t.connect()
    assert await t.queue_depth(q) == 0
    await t.close()


async def test_survives_process_restart_with_in_flight_message(tmp_path: Path) -> None:
    settings = TransportSettings(kind="local", url=str(tmp_path), visibility_timeout_s=0.2)
    t1 = transports.create(settings)
    await t1.connect()
    await t1.publish("q", b"job")
    await next_delivery(t1.consume("q", prefetch=1))
    # no close(): the process "dies"; the lease runs out on its own
    t2 = transports.create(settings)
    await t2.connect()
    [d] = await take(t2.consume("q", prefetch=1), 1)
    assert (d.body, d.attempt) == (b"job", 2)
    await t2.close()
    await t1.close()
