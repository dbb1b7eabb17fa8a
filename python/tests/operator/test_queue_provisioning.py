"""Queues through real transports: local always, a dead broker fails fast and readably."""

from __future__ import annotations

import time
from pathlib import Path

from asya.operator import config, provisioning


async def test_local_queue_and_dlq_are_created_measured_and_deleted(tmp_path: Path) -> None:
    q = provisioning.Queues({"l": config.TransportConfig("l", "local", url=str(tmp_path))})
    try:
        assert await q.ensure("l", "asya-a") is None
        assert await q.depth("l", "asya-a") == 0
        assert await q.delete("l", "asya-a") is None
    finally:
        await q.close()


async def test_a_dead_broker_is_a_problem_and_later_calls_fail_fast() -> None:
    dead = config.TransportConfig("mq", "rabbitmq", url="amqp://guest:guest@127.0.0.1:1/")
    q = provisioning.Queues({"mq": dead}, timeout_s=5, cooldown_s=30)
    problem = await q.ensure("mq", "asya-a")
    assert problem is not None and problem.reason == "QueueUnavailable"
    assert "cannot create queue 'asya-a' on transport 'mq' (rabbitmq)" in problem.message
    t0 = time.monotonic()
    for _ in range(50):
        assert await q.ensure("mq", "asya-a") is not None
    assert time.monotonic() - t0 < 1.0
    assert await q.depth("mq", "asya-a") is None
