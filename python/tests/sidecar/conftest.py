"""Harness for sidecar tests: real runtime + sidecar processes on a real broker.

``broker`` is parametrised over the transports; tests that the issue requires
"on real RabbitMQ" use ``rabbit`` instead. ``actors.start(name, handler)``
launches a runtime + sidecar pair; ``bus`` is the test's own transport
connection for publishing inputs and collecting what arrives on a queue.
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
from support.procs import Proc, start_runtime, start_sidecar, wait_until

from asya import transports
from asya.contracts import encode_envelope, queue_name


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


@pytest.fixture
def rabbit(rabbitmq_server: Any) -> Broker:
    return Broker("rabbitmq", rabbitmq_server.url, rabbitmq_server)


class Bus:
    """The test's view of the broker: publish inputs, collect outputs."""

    def __init__(self, transport: transports.Transport, prefix: str) -> None:
        self.transport = transport
        self.prefix = prefix

    def actor(self, name: str) -> str:
        """A unique actor name per test, so queues never leak between tests."""
        return f"{name}-{self.prefix}"

    async def publish(self, actor: str, env: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
        queue = queue_name(actor)
        await self.transport.ensure_queue(queue)
        await self.transport.publish(queue, raw if raw is not None else encode_envelope(env or {}))

    async def collect(self, actor: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Take exactly ``count`` envelopes from ``actor``'s queue (acking them), or fail at the deadline."""
        queue = queue_name(actor)
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
        queue = queue_name(actor)
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
        return await self.transport.queue_depth(queue_name(actor))


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

    def restart_runtime(self, log_dir: Path) -> None:
        self.runtime = start_runtime(self.handler, self.socket_dir, log_dir, **self.runtime_env)


class Actors:
    def __init__(self, broker: Broker, log_dir: Path) -> None:
        self.broker = broker
        self.log_dir = log_dir
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
        sidecar = start_sidecar(actor, sock, self.log_dir, self.broker.env, **sidecar_env)
        pair = Pair(actor, sock, runtime, sidecar, f"support.handlers.{handler}", {"mode": mode, **renv})
        self.pairs.append(pair)
        return pair

    def sidecar(self, pair: Pair, **sidecar_env: Any) -> Proc:
        """Start another sidecar for an existing pair (after the first one was killed)."""
        proc = start_sidecar(pair.actor, pair.socket_dir, self.log_dir, self.broker.env, **sidecar_env)
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
def actors(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Actors]:
    a = Actors(broker, tmp_path)
    yield a
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(a.logs())
    a.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


def envelope(env_id: str, actors: list[str], payload: Any = None, current: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": env_id, "route": {"actors": actors, "current": current}, "payload": payload or {}, **extra}


__all__ = ["Actors", "Broker", "Bus", "envelope", "wait_until"]
