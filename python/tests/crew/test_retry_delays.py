"""Retries wait on the broker, not in error-end, and arrive on time (issue target: p99 <= 10 ms late).

error-end runs as its own process (as deployed); this test plays the failing
actor: it feeds error messages at a steady 100/s and timestamps each retry when
it reaches the actor's queue, against the ``x-asya-retry-not-before`` time
error-end computed when it decided (decision time + configured delay).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from crew_helpers import error_message, open_transport
from support.procs import Proc, base_env, wait_until

from asya.contracts import headers as h
from asya.crew.settings import CrewSettings

pytestmark = pytest.mark.timeout(120)

N = int(os.environ.get("ASYA_RETRY_DELAY_N", "200"))
RATE_PER_S = 100
LATE_P99_S = {"rabbitmq": 1.5, "local": 1.5, "sqs": 5.0}
"""Allowed p99 lateness in the suite: a guard against waiting in error-end (which would show
as lateness of many whole delays), loose enough for a loaded 2-core CI box. The measured
figures (printed with -s; quiet-machine numbers in docs/crew.md) are what the 10 ms target is
judged on. ElasticMQ releases delayed messages about 100 ms late even when idle."""


def start_error_end(settings: CrewSettings, tmp: Path, health_port: int) -> Proc:
    env = base_env(
        ASYA_HEALTH_PORT=health_port,
        ASYA_TRANSPORT=settings.transport,
        ASYA_TRANSPORT_URL=settings.transport_url,
        ASYA_STORAGE_URL=settings.storage_url,
        ASYA_RETRY_MAX_ATTEMPTS=3,
        ASYA_RETRY_BACKOFF_BASE_S=1.0,
        ASYA_RETRY_JITTER=0.5,
        # 100 errors/s with 0.5-1.5 s delays: an error-end that slept through delays with 8
        # slots would fall ~20 s behind, far beyond every bound below
        ASYA_PREFETCH=8,
    )
    return Proc([sys.executable, "-m", "asya.crew", "error-end"], env, tmp / f"error-end-{time.monotonic_ns()}.log")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def test_retries_arrive_after_their_delay_without_blocking_error_end(
    broker_settings: CrewSettings, tmp_path: Path
) -> None:
    actor = f"retry-{uuid.uuid4().hex[:8]}"
    queue = f"asya-{actor}"
    t = await open_transport(broker_settings)
    late: list[float] = []
    port = free_port()
    proc = start_error_end(broker_settings, tmp_path, port)
    try:
        await asyncio.to_thread(wait_until, lambda: ready(port) or not proc.alive(), 30, what="error-end ready")
        assert proc.alive(), proc.log()
        await t.ensure_queue(queue)
        await t.ensure_queue("asya-error-end")

        async def collect() -> None:
            async for d in t.consume(queue, prefetch=64):
                arrived = time.time()
                env = json.loads(d.body)
                late.append(arrived - float(env["headers"][h.RETRY_NOT_BEFORE]))

                await d.ack()
                if len(late) == N:
                    return

        task = asyncio.create_task(collect())
        for i in range(N):
            msg = error_message(f"r-{i}", [actor], 0, original_payload=i)
            await t.publish("asya-error-end", json.dumps(msg).encode())
            await asyncio.sleep(1 / RATE_PER_S)
        await asyncio.wait_for(task, 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            exposition = resp.read().decode()
        assert f'asya_crew_retries_scheduled_total{{actor="{actor}"}} {N}' in exposition
    except BaseException:
        print(proc.log())
        raise
    finally:
        proc.stop()
        await t.close()
    late.sort()
    p50, p99 = statistics.median(late), late[int(0.99 * (len(late) - 1))]
    print(
        f"\n{broker_settings.transport}: retry lateness p50={p50 * 1e3:.1f} ms p99={p99 * 1e3:.1f} ms max={late[-1] * 1e3:.1f} ms"
    )
    assert late[0] >= -0.002, f"a retry arrived {-late[0] * 1e3:.1f} ms early"
    assert p99 <= LATE_P99_S[broker_settings.transport], f"p99 lateness {p99 * 1e3:.1f} ms"
