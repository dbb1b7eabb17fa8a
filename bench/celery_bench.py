"""Celery 3-task chain throughput on the same RabbitMQ, timed exactly like the Asya pipeline.

Per run: empty the queues, pre-load N chains (``bench.celery_app``), start a
``celery worker`` subprocess, and time from the first task taken off the queue
to the N-th completion message on ``bench-celery-done`` (``measure_drain``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asya.transports import TransportSettings, create

from bench import procs
from bench.asya_bench import CpuMeter, measure_drain
from bench.peers import PeerBench

TASK_QUEUE = "bench-celery"
DONE_QUEUE = "bench-celery-done"


def _preload(amqp_url: str, n: int, payload_bytes: int, procs_n: int = 0) -> None:
    """Publish N chains from child processes (Celery's client is synchronous; one per core)."""
    procs_n = procs_n or max(1, min(4, os.cpu_count() or 1))
    env = procs.child_env(BENCH_AMQP_URL=amqp_url, BENCH_CELERY_CONFIRM="0")
    children = []
    for k in range(procs_n):
        count = n // procs_n + (1 if k < n % procs_n else 0)
        code = (
            "from bench.celery_app import app, three_step_chain\n"
            "from bench.asya_bench import make_payload\n"
            f"p = make_payload({payload_bytes})\n"
            "with app.producer_pool.acquire(block=True) as prod:\n"
            f"    for i in range({count}): three_step_chain(p).apply_async(producer=prod)\n"
        )
        children.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=procs.REPO))
    codes = [c.wait() for c in children]
    if any(codes):
        raise RuntimeError(f"celery pre-load failed: exit codes {codes}")


class CeleryBench(PeerBench):
    def __init__(self, amqp_url: str, work: Path, n: int, payload_bytes: int, timeout_s: float = 300.0) -> None:
        super().__init__(amqp_url, work, n, payload_bytes, timeout_s)
        self.runs: list[dict[str, Any]] = []

    async def run(self, pool: str, concurrency: int, prefetch: int) -> dict[str, Any]:
        transport = create(TransportSettings(kind="rabbitmq", url=self.url))
        await transport.connect()
        try:
            for q in (TASK_QUEUE, DONE_QUEUE):
                await transport.delete_queue(q)
                await transport.ensure_queue(q)
            t0 = time.perf_counter()
            await asyncio.to_thread(_preload, self.url, self.n, self.payload_bytes)
            while await transport.queue_depth(TASK_QUEUE) < self.n:  # unconfirmed pre-load: wait for all
                if time.perf_counter() - t0 > 120:
                    raise TimeoutError("celery pre-load did not reach the queue")
                await asyncio.sleep(0.05)
            worker = procs.Proc(
                f"celery worker {pool}x{concurrency}",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.celery_app",
                    "worker",
                    "-P",
                    pool,
                    "-c",
                    str(concurrency),
                    "-Q",
                    TASK_QUEUE,
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "WARNING",
                ],
                procs.child_env(BENCH_AMQP_URL=self.url, BENCH_CELERY_PREFETCH=prefetch),
                self.logs / f"celery-{pool}-{concurrency}-{len(self.runs)}.log",
            )
            try:
                cpu = CpuMeter({"worker": worker}, children=True)
                run = await measure_drain(transport, TASK_QUEUE, DONE_QUEUE, self.n, self.timeout_s, [worker], cpu)
                run["worker_rss_mib"] = worker.rss_mib(children=True)
            finally:
                worker.stop()
        finally:
            await transport.close()
        run.update(pool=pool, concurrency=concurrency, prefetch_multiplier=prefetch)
        self.runs.append(run)
        return run


def settings_note() -> dict[str, Any]:
    return {
        "acks_late": True,
        "reject_on_worker_lost": True,
        "delivery_mode": "persistent",
        "publisher_confirms": True,
        "result_backend": None,
        "completion": f"last task publishes a persistent confirmed message to {DONE_QUEUE}",
        "queue": f"one durable queue {TASK_QUEUE} for all three tasks (Celery default layout)",
        "cpu_count": os.cpu_count(),
    }
