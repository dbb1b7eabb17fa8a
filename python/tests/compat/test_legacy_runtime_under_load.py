"""Our sidecar in front of a 0.1.x runtime (one connection at a time, listen backlog 5) under load.

A full backlog is back-pressure from a live runtime, never a crash: at ASYA_PREFETCH=64 every envelope
reaches the next queue, none goes to error-end and none is given back as a lost runtime.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from compat.conftest import Procs
from sidecar.conftest import Bus, envelope
from support.procs import free_port, scrape, wait_until

from asya.contracts import encode_envelope, queue_name

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(180)]


async def _publish_many(bus: Bus, actor: str, envs: list[dict[str, object]]) -> None:
    queue = queue_name(actor)
    await bus.transport.ensure_queue(queue)
    for start in range(0, len(envs), 250):
        await asyncio.gather(*(bus.transport.publish(queue, encode_envelope(e)) for e in envs[start : start + 250]))


async def _drive(bus: Bus, procs: Procs, n: int, **sidecar_env: object) -> dict[str, float]:
    me, nxt, ok_end, err_end = (bus.actor(x) for x in ("legacy", "next", "happy", "errors"))
    sock = procs.socket_dir()
    procs.legacy_runtime(sock)
    port = free_port()
    sidecar = procs.sidecar(
        me,
        sock,
        ASYA_PREFETCH=64,
        ASYA_HTTP_PORT=port,
        ASYA_HAPPY_END_ACTOR=ok_end,
        ASYA_ERROR_END_ACTOR=err_end,
        **sidecar_env,
    )
    ids = [f"{bus.prefix}-{i}" for i in range(n)]
    await _publish_many(bus, me, [envelope(i, [me, nxt], {"i": i}) for i in ids])
    got = await bus.collect_ids(nxt, set(ids), timeout=120)
    assert {g["id"] for g in got} == set(ids)
    assert all(g["route"]["current"] == 1 for g in got)
    # every input settled (acked), so any error-end message would already be confirmed
    metric = f'asya_sidecar_messages_processed_total{{actor="{me}",outcome="success"}}'
    wait_until(lambda: scrape(port).get(metric, 0) >= n, 30, what="every input processed")
    assert await bus.depth(err_end) == 0, "envelopes reached error-end"
    samples = scrape(port)
    assert sidecar.alive()
    assert "runtime lost" not in sidecar.log()
    procs.last_sidecar_log = sidecar.log()
    return {k: v for k, v in samples.items() if k.startswith("asya_sidecar_")}


def _outcomes(samples: dict[str, float]) -> dict[str, float]:
    out = {}
    for key, value in samples.items():
        m = re.match(r'asya_sidecar_messages_processed_total\{.*outcome="(\w+)"\}', key)
        if m:
            out[m.group(1)] = value
    return out


async def test_5000_envelopes_at_prefetch_64_all_reach_the_next_queue(rabbit_bus: Bus, procs: Procs) -> None:
    samples = await _drive(rabbit_bus, procs, 5000)
    assert _outcomes(samples) == {"success": 5000.0}
    # a runtime without features gets one call at a time: its backlog never fills
    assert "listen backlog is full" not in procs.last_sidecar_log
    assert not any("runtime_errors" in k and v for k, v in samples.items()), samples


async def test_more_connections_than_its_backlog_wait_instead_of_crashing(rabbit_bus: Bus, procs: Procs) -> None:
    # A user who raises ASYA_RUNTIME_CONNECTIONS past what the runtime queues gets EAGAIN on connect:
    # the sidecar retries it (back-pressure) instead of counting a crash.
    samples = await _drive(rabbit_bus, procs, 1500, ASYA_RUNTIME_CONNECTIONS=32)
    assert "listen backlog is full" in procs.last_sidecar_log, "the run never met back-pressure"
    assert _outcomes(samples) == {"success": 1500.0}
    assert not any("runtime_errors" in k and v for k, v in samples.items()), samples
