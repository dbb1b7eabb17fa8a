"""`asya dev run` under faults: SIGKILLed sidecars, runtimes and crew, and one broker restart.

The run must end only when every input is accounted for by id (a result or a
dead letter for it or for each of its fan-out children), leave nothing queued,
and print a summary equal to what the folders hold.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
from devrun_helpers import expected_ids, fault_pipeline, queued

from asya import transports
from asya.cli import devrun, results
from asya.cli.pipeline import Pipeline
from asya.cli.supervisor import Supervisor
from asya.contracts import HAPPY_END, encode_envelope, queue_name

N = 240
KINDS = ("sidecar", "runtime", "happy-end", "error-end")
REPLAYED = 60
"""Stored results sent to happy-end a second time, mid-run."""
FOREIGN = 5
"""Envelopes with ids the run never produced, published into its last queue."""


class FaultInjector:
    """SIGKILLs at least one process of every kind at random moments and restarts the broker once."""

    def __init__(self, broker: Any, results_dir: Path, seed: int) -> None:
        self.broker = broker
        self.results_dir = results_dir
        self.rnd = random.Random(seed)
        self.killed: collections.Counter[str] = collections.Counter()
        self.broker_restarts = 0
        self.first_at: dict[str, int] = {}
        """Files stored when each kind of fault first struck."""
        self.task: asyncio.Task[None] | None = None
        self.supervisor: Supervisor | None = None
        self.pipeline: Pipeline | None = None
        self.replayed = 0
        self.seed = seed

    def begin(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        plan: list[str] = [*KINDS, *self.rnd.choices(KINDS, k=4)]
        self.rnd.shuffle(plan)
        plan.insert(self.rnd.randrange(2, len(plan) // 2 + 1), "broker")  # early enough to leave work in flight
        plan.insert(self.rnd.randrange(1, len(plan)), "replay")
        for fault in plan:
            await asyncio.sleep(self.rnd.uniform(0.1, 0.5))  # a random moment, not a wait for a condition
            if fault == "broker":
                await asyncio.to_thread(self.broker.restart)
                self.broker_restarts += 1
            elif fault == "replay":
                await self._replay()
            else:
                await self._kill(fault)
            self.first_at.setdefault(fault, len(list(self.results_dir.rglob("*.json"))))

    async def _replay(self) -> None:
        """What at-least-once delivery does at scale, on purpose: repeat finished envelopes, add foreign ones.

        Stored results go to happy-end again (a second store and a second ``succeeded``
        report for ids that already ended) and envelopes this run never produced go
        into the last actor's queue.
        """
        assert self.pipeline is not None
        deadline = asyncio.get_running_loop().time() + 60
        while len(files := sorted(self.results_dir.glob("20*/*/*.json"))) < REPLAYED:
            assert asyncio.get_running_loop().time() < deadline, "results never reached the replay point"
            await asyncio.sleep(0.05)
        transport = transports.create(transports.TransportSettings(kind="rabbitmq", url=self.broker.url))
        await transport.connect()
        try:
            for path in files[:REPLAYED]:
                await transport.publish(queue_name(HAPPY_END), path.read_bytes())
            last = self.pipeline.route[-1]
            for i in range(FOREIGN):
                env = {"id": f"intruder-{i}", "route": {"actors": [last], "current": 0}, "payload": {"n": 1}}
                await transport.publish(queue_name(last), encode_envelope(env))
        finally:
            await transport.close()
        self.replayed = REPLAYED

    async def _kill(self, kind: str) -> None:
        assert self.supervisor is not None
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # after the broker restart a process may be between crash and restart
            alive = [
                c
                for c in self.supervisor.children
                if c.name.startswith(kind) and c.proc is not None and c.proc.returncode is None
            ]
            if alive:
                break
            assert asyncio.get_running_loop().time() < deadline, f"no live {kind} process to kill for 30 s"
            await asyncio.sleep(0.05)
        child = self.rnd.choice(alive)
        assert child.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.proc.pid, signal.SIGKILL)
        self.killed[kind] += 1


@pytest.mark.slow
@pytest.mark.rabbitmq
@pytest.mark.timeout(240)
async def test_dev_run_ends_only_when_every_input_is_accounted_for_under_sigkills_and_a_broker_restart(
    rabbitmq_server: Any, tmp_path: Path
) -> None:
    if not rabbitmq_server.can_restart:
        pytest.skip("needs a broker this session can restart")
    pipeline = fault_pipeline(N)
    injector = FaultInjector(rabbitmq_server, tmp_path / "results", seed=random.randrange(1 << 30))
    injector.pipeline = pipeline
    opts = devrun.RunOptions(transport="rabbitmq", url=rabbitmq_server.url, out_dir=tmp_path, timeout_s=170)
    try:
        result = await devrun.run(pipeline, opts, on_running=injector.begin)
    finally:
        if injector.task is not None and not injector.task.done():
            injector.task.cancel()
    scan = results.scan(tmp_path / "results")
    left = await queued(rabbitmq_server.url, devrun.pipeline_queues(pipeline))
    assert not any(left.values()), f"the run said complete with envelopes queued: {left}"
    assert result.complete, (result.summary, injector.seed)
    assert len(result.input_ids) == N and not result.summary.unaccounted
    ok, dead = expected_ids(list(result.input_ids))
    missing = (ok - set(scan.results)) | (dead - set(scan.dead_letters))
    assert not missing, f"{len(missing)} envelope(s) of the run were never stored, e.g. {sorted(missing)[:3]}"
    assert injector.task is not None and injector.task.done() and not injector.task.cancelled(), (
        "the run ended before every planned fault was injected"
    )
    injector.task.result()
    assert set(injector.killed) == set(KINDS) and injector.broker_restarts == 1, (injector.killed, injector.seed)

    intruders = {f"intruder-{i}" for i in range(FOREIGN)}
    assert injector.replayed == REPLAYED
    assert set(scan.results) == ok | intruders and set(scan.dead_letters) == dead
    total = len(ok) + len(dead) + FOREIGN
    late = {fault: n for fault, n in injector.first_at.items() if n > 0.9 * total}
    assert not late, f"faults that first struck when the work was (nearly) done: {late} of {total} files"

    # the summary is the folders: distinct ids of this run, foreign files apart
    s = result.summary
    assert (s.results, s.result_files) == (len(ok), scan.result_files() - FOREIGN)
    assert (s.dead_letters, s.dead_letter_files) == (len(dead), scan.dead_letter_files())
    assert s.foreign_files == FOREIGN and s.foreign_reports == FOREIGN
    assert result.progress.repeated_reports >= 1, "replayed results were reported a second time"
    assert s.still_queued == 0
    assert not list((tmp_path / "results").rglob(".tmp-*")), "temp files left in the results folder"
