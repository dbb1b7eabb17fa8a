"""Harness for sidecar tests: real runtime + sidecar processes on a real broker.

``broker`` is parametrised over local and RabbitMQ; ``on_every_broker`` adds
SQS (ElasticMQ) for the journeys that must hold on all three; tests that the
issue requires "on real RabbitMQ" use ``rabbit`` instead.
``actors.start(name, handler)`` launches a runtime + sidecar pair; ``bus`` is the
test's own transport connection for publishing inputs and collecting what
arrives on a queue.

Queue names are the test's own, so nothing leaks between tests on the session
broker: ``bus.actor(name)`` gives a unique actor name, and every sidecar sends
finished envelopes to ``bus.happy_end`` and failures to ``bus.error_end``
(``happy-end-<prefix>``, ``error-end-<prefix>``, via ``ASYA_HAPPY_END_ACTOR`` /
``ASYA_ERROR_END_ACTOR``). ``bus`` reads ``"happy-end"`` / ``"error-end"`` as
those per-test names too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.procs import Proc, spawn_runtime, start_runtime, start_sidecar, wait_until

from asya import transports
from asya.contracts import ERROR_END, HAPPY_END, encode_envelope, queue_name


@dataclasses.dataclass
class Broker:
    kind: str
    url: str
    server: Any = None

    @property
    def env(self) -> dict[str, str]:
        extra = self.server.env() if self.kind == "sqs" else {}
        return {**extra, "ASYA_TRANSPORT": self.kind, "ASYA_TRANSPORT_URL": self.url, "ASYA_VISIBILITY_TIMEOUT_S": "5"}

    def settings(self) -> transports.TransportSettings:
        return transports.TransportSettings(kind=self.kind, url=self.url, visibility_timeout_s=5)


def _local_broker(tmp_path: Path) -> Broker:
    return Broker("local", str(tmp_path / "queues"))


@pytest.fixture(params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Broker:
    if request.param == "local":
        return _local_broker(tmp_path)
    if request.param == "sqs":  # only where a test asks for it (indirect parametrize)
        sqs = request.getfixturevalue("sqs_server")
        for key, value in sqs.env().items():
            if key.startswith("AWS_"):
                request.getfixturevalue("monkeypatch").setenv(key, value)
        return Broker("sqs", sqs.url, sqs)
    server = request.getfixturevalue("rabbitmq_server")
    return Broker("rabbitmq", server.url, server)


on_every_broker = pytest.mark.parametrize(
    "broker",
    ["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq), pytest.param("sqs", marks=pytest.mark.sqs)],
    indirect=True,
)
"""Run a test on the local transport, RabbitMQ and SQS."""


@pytest.fixture
def rabbit(rabbitmq_server: Any) -> Broker:
    return Broker("rabbitmq", rabbitmq_server.url, rabbitmq_server)


class Bus:
    """The test's view of the broker: publish inputs, collect outputs."""

    def __init__(self, transport: transports.Transport, prefix: str) -> None:
        self.transport = transport
        self.prefix = prefix
        self.happy_end = self.actor(HAPPY_END)
        """This test's happy-end: where its sidecars send finished envelopes."""
        self.error_end = self.actor(ERROR_END)
        """This test's error-end: where its sidecars send failures."""

    def actor(self, name: str) -> str:
        """A unique actor name per test, so queues never leak between tests."""
        return f"{name}-{self.prefix}"

    @property
    def ends(self) -> dict[str, str]:
        """``start_sidecar`` arguments that point a sidecar at this test's end actors."""
        return {"happy_end": self.happy_end, "error_end": self.error_end}

    def _queue(self, actor: str) -> str:
        # the end actors' role names mean this test's own end queues
        return queue_name({HAPPY_END: self.happy_end, ERROR_END: self.error_end}.get(actor, actor))

    async def publish(self, actor: str, env: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
        """Publish ``env`` (encoded as is: a ``None`` payload goes as JSON null) or the bytes ``raw``."""
        if raw is None:
            if env is None:
                raise TypeError("publish needs an envelope or raw bytes")
            raw = encode_envelope(env)
        queue = self._queue(actor)
        await self.transport.ensure_queue(queue)
        await self.transport.publish(queue, raw)

    async def collect(self, actor: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Take exactly ``count`` envelopes from ``actor``'s queue (acking them), or fail at the deadline."""
        queue = self._queue(actor)
        await self.transport.ensure_queue(queue)
        got: list[dict[str, Any]] = []

        async def take() -> None:
            async for delivery in self.transport.consume(queue, prefetch=64):
                got.append(json.loads(delivery.body))
                await delivery.ack()
                if len(got) >= count:
                    return

        try:
            await asyncio.wait_for(take(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"only {len(got)} of {count} envelope(s) arrived on {queue} within {timeout}s"
            ) from None
        return got

    async def collect_ids(self, actor: str, ids: set[str], timeout: float = 60.0) -> list[dict[str, Any]]:
        """Take envelopes from ``actor``'s queue until every id in ``ids`` was seen (duplicates allowed)."""
        queue = self._queue(actor)
        await self.transport.ensure_queue(queue)
        got: list[dict[str, Any]] = []
        missing = set(ids)

        async def take() -> None:
            async for delivery in self.transport.consume(queue, prefetch=64):
                env = json.loads(delivery.body)
                got.append(env)
                missing.discard(env.get("id"))
                await delivery.ack()
                if not missing:
                    return

        try:
            await asyncio.wait_for(take(), timeout)
        except TimeoutError:
            raise AssertionError(f"{len(missing)} id(s) never arrived on {queue}: {sorted(missing)[:10]}") from None
        return got

    async def depth(self, actor: str) -> int:
        return await self.transport.queue_depth(self._queue(actor))


@pytest.fixture
async def bus(broker: Broker) -> AsyncIterator[Bus]:
    transport = transports.create(broker.settings())
    await transport.connect()
    yield Bus(transport, uuid.uuid4().hex[:6])
    await transport.close()


@dataclasses.dataclass
class Pair:
    actor: str
    socket_dir: Path
    runtime: Proc
    sidecar: Proc
    handler: str
    runtime_env: dict[str, Any]

    def restart_runtime(self, log_dir: Path, may_die: bool = False) -> None:
        """Start the runtime again; ``may_die`` for a handler that can crash on its first message before we look."""
        start = spawn_runtime if may_die else start_runtime
        self.runtime = start(self.handler, self.socket_dir, log_dir, **self.runtime_env)


class Actors:
    def __init__(self, broker: Broker, log_dir: Path, ends: dict[str, str]) -> None:
        self.broker = broker
        self.log_dir = log_dir
        self.ends = ends
        """The end actors of every sidecar started here (``start_sidecar``'s happy_end / error_end)."""
        self.pairs: list[Pair] = []
        self.extra: list[Proc] = []

    def start(
        self,
        actor: str,
        handler: str,
        *,
        mode: str = "payload",
        runtime_env: dict[str, Any] | None = None,
        **sidecar_env: Any,
    ) -> Pair:
        sock = Path(tempfile.mkdtemp(prefix="asya-t-"))
        renv = dict(runtime_env or {})
        runtime = start_runtime(f"support.handlers.{handler}", sock, self.log_dir, mode, **renv)
        sidecar = start_sidecar(actor, sock, self.log_dir, self.broker.env, **self.ends, **sidecar_env)
        pair = Pair(actor, sock, runtime, sidecar, f"support.handlers.{handler}", {"mode": mode, **renv})
        self.pairs.append(pair)
        return pair

    def sidecar(self, pair: Pair, **sidecar_env: Any) -> Proc:
        """Start another sidecar for an existing pair (after the first one was killed)."""
        proc = start_sidecar(pair.actor, pair.socket_dir, self.log_dir, self.broker.env, **self.ends, **sidecar_env)
        pair.sidecar = proc
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.actor} sidecar ---\n{p.sidecar.log()[-3000:]}\n--- runtime ---\n{p.runtime.log()[-2000:]}"
            for p in self.pairs
        )

    def stop(self) -> None:
        for pair in self.pairs:
            pair.sidecar.stop()
            pair.runtime.stop()


@pytest.fixture
def actors(broker: Broker, bus: Bus, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Actors]:
    a = Actors(broker, tmp_path, bus.ends)
    yield a
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(a.logs())
    a.stop()


def envelope(env_id: str, actors: list[str], payload: Any, current: int = 0, **extra: Any) -> dict[str, Any]:
    """An envelope with ``payload`` exactly as given (``None`` is sent as JSON null)."""
    return {"id": env_id, "route": {"actors": actors, "current": current}, "payload": payload, **extra}


__all__ = ["Actors", "Broker", "Bus", "envelope", "on_every_broker", "wait_until"]
