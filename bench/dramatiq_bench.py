"""Dramatiq 3-actor pipeline throughput on the same RabbitMQ, timed exactly like the Asya pipeline.

Per run: delete the pipeline's queues, pre-load N messages for the first actor from a
child process (``bench.dramatiq_app``, no confirms while pre-loading; the bench then
counts the queue), start ``dramatiq`` with 3 worker processes and time from the first
message taken to the N-th completion on ``bench-dramatiq-done`` (``measure_drain``).
Two variants in the same run: Dramatiq's defaults (no publisher confirms) and
``confirm_delivery=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asya.transports import TransportSettings, create

from bench import procs
from bench.asya_bench import CpuMeter, measure_drain
from bench.dramatiq_app import DONE_QUEUE, QUEUES
from bench.peers import PeerBench

PROCESSES = 3
THREADS = 8  # Dramatiq's default per process


def _preload(amqp_url: str, n: int, payload_bytes: int) -> None:
    code = (
        "from bench.dramatiq_app import step_a\n"
        "from bench.asya_bench import make_payload\n"
        f"p = make_payload({payload_bytes})\n"
        f"for i in range({n}): step_a.send(p)\n"
    )
    env = procs.child_env(BENCH_AMQP_URL=amqp_url, BENCH_DRAMATIQ_CONFIRM="0")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=procs.REPO, check=False, timeout=300)
    if done.returncode:
        raise RuntimeError(f"dramatiq pre-load failed: exit code {done.returncode}")


class DramatiqBench(PeerBench):
    def __init__(self, amqp_url: str, work: Path, n: int, payload_bytes: int, timeout_s: float = 300.0) -> None:
        super().__init__(amqp_url, work, n, payload_bytes, timeout_s)
        self.runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}

    async def run(self, confirm: bool) -> dict[str, Any]:
        transport = create(TransportSettings(kind="rabbitmq", url=self.url))
        await transport.connect()
        try:
            # Dramatiq declares its own queues (with its dead-letter arguments) on first use;
            # the bench only deletes them and their delay/dead-letter siblings.
            for q in QUEUES:
                for name in (q, f"{q}.DQ", f"{q}.XQ"):
                    with contextlib.suppress(Exception):
                        await transport.delete_queue(name)
            with contextlib.suppress(Exception):
                await transport.delete_queue(DONE_QUEUE)
            await transport.ensure_queue(DONE_QUEUE)
            t0 = time.perf_counter()
            await asyncio.to_thread(_preload, self.url, self.n, self.payload_bytes)
            while await transport.queue_depth(QUEUES[0]) < self.n:  # unconfirmed pre-load: wait for all
                if time.perf_counter() - t0 > 120:
                    raise TimeoutError("dramatiq pre-load did not reach the queue")
                await asyncio.sleep(0.05)
            tag = "confirm" if confirm else "default"
            worker = procs.Proc(
                f"dramatiq worker {tag}",
                [sys.executable, "-m", "dramatiq", "bench.dramatiq_app",
                 "--processes", str(PROCESSES), "--threads", str(THREADS)],
                procs.child_env(BENCH_AMQP_URL=self.url, BENCH_DRAMATIQ_CONFIRM="1" if confirm else "0"),
                self.logs / f"dramatiq-{tag}-{len(self.runs[confirm])}.log",
            )  # fmt: skip
            try:
                cpu = CpuMeter({"worker": worker}, children=True)
                run = await measure_drain(
                    transport,
                    QUEUES[0],
                    DONE_QUEUE,
                    self.n,
                    self.timeout_s,
                    [worker],
                    cpu,
                )
                run["worker_rss_mib"] = worker.rss_mib(children=True)
            finally:
                worker.stop()
        finally:
            await transport.close()
        run.update(confirm_delivery=confirm, processes=PROCESSES, threads=THREADS)
        self.runs[confirm].append(run)
        return run


def settings_note() -> dict[str, Any]:
    return {
        "broker": "RabbitmqBroker, default middleware, max_retries=0",
        "processes": PROCESSES,
        "threads_per_process": THREADS,
        "queues": f"one per actor: {', '.join(QUEUES)}",
        "completion": f"last actor publishes a persistent message to {DONE_QUEUE}",
        "variants": {
            "default": "confirm_delivery=False (Dramatiq's default)",
            "confirm": "confirm_delivery=True",
        },
    }
