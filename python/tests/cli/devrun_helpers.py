"""Shared by the dev-run tests on RabbitMQ: the tiny three-step pipeline and a queue check."""

from __future__ import annotations

import uuid
from pathlib import Path

from asya import transports
from asya.cli.pipeline import ActorSpec, Pipeline

HERE = Path(__file__).resolve().parent


def fault_pipeline(n: int) -> Pipeline:
    tag = uuid.uuid4().hex[:6]  # own actor queues: the session broker is shared with other tests
    a, b, c = (f"f{tag}-{s}" for s in "abc")
    return Pipeline(
        name=f"faults-{tag}",
        path=HERE / "fault_handlers.py",
        pythonpath=HERE,
        route=(a, b, c),
        actors=(
            ActorSpec(a, "fault_handlers.step_a", prefetch=4),
            ActorSpec(b, "fault_handlers.step_b", prefetch=2),
            ActorSpec(c, "fault_handlers.step_c", prefetch=2, replicas=2),
        ),
        inputs=tuple({"n": i} for i in range(n)),
    )


def expected_ids(run_ids: list[str]) -> tuple[set[str], set[str]]:
    """(result ids, dead-letter ids) that fault_handlers produce for these inputs."""
    ok, dead = set(), set()
    for n, env_id in enumerate(run_ids):
        ids = [f"{env_id}.0", f"{env_id}.1"] if n % 10 == 0 else [env_id]
        (dead if n % 25 == 0 else ok).update(ids)
    return ok, dead


async def queued(url: str, queues: list[str]) -> dict[str, int]:
    transport = transports.create(transports.TransportSettings(kind="rabbitmq", url=url))
    await transport.connect()
    try:
        return {q: await transport.queue_depth(q) for q in queues}
    finally:
        await transport.close()
