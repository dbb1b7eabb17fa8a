"""Harness for the cancellation and deadline journeys: real sidecars, runtimes and crew around a real gateway.

Test modules import this as ``journey_helpers``. Every actor gets a unique name
and its own ``/metrics`` port, so a test can read what one sidecar did (drops,
deadline errors, messages received) instead of guessing from timing. The crew
queues are shared on a session broker, so checks filter on the test's own ids.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_helpers import REPORT_TOKEN, RunningGateway
from support.procs import Proc, base_env, free_port, scrape, start_runtime, start_sidecar

from asya.contracts import encode_envelope, queue_name
from asya.transports import Transport


@dataclasses.dataclass
class Journey:
    gateway: RunningGateway
    transport_env: dict[str, str]
    tmp: Path
    procs: list[Proc] = dataclasses.field(default_factory=list)
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    suffix: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def logs_dir(self) -> Path:
        path = self.tmp / "logs"
        path.mkdir(exist_ok=True)
        return path

    @property
    def store(self) -> Path:
        return self.tmp / "store"

    @property
    def report_env(self) -> dict[str, str]:
        return {"ASYA_GATEWAY_URL": self.gateway.url, "ASYA_GATEWAY_TOKEN": REPORT_TOKEN}

    def name(self, actor: str) -> str:
        return f"{actor}-{self.suffix}"

    def start_actor(self, actor: str, handler: str, **sidecar_env: Any) -> None:
        sock = Path(tempfile.mkdtemp(prefix="asya-j-"))
        self.procs.append(start_runtime(f"support.handlers.{handler}", sock, self.logs_dir, ASYA_ACTOR=actor))
        port = self.ports[actor] = free_port()
        env = {"ASYA_PROCESSING_TIMEOUT_S": 30, "ASYA_HTTP_PORT": port, **self.report_env, **sidecar_env}
        self.procs.append(start_sidecar(actor, sock, self.logs_dir, self.transport_env, **env))

    def start_crew(self, **env: Any) -> None:
        crew_env = {**self.transport_env, **self.report_env, "ASYA_STORAGE_URL": self.store.as_uri(), **env}
        for end in ("happy-end", "error-end"):
            log = self.logs_dir / f"{end}-{time.monotonic_ns()}.log"
            self.procs.append(Proc([sys.executable, "-m", "asya.crew", end], base_env(**crew_env), log))

    def metric(self, actor: str, name: str, **labels: str) -> float:
        """One sample of ``actor``'s sidecar (0 when absent or the sidecar is not serving yet)."""
        try:
            samples = scrape(self.ports[actor])
        except OSError:
            return 0.0
        want = {"actor": actor, **labels}
        for key, value in samples.items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            got = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if part)
            if {k: v.strip('"') for k, v in got.items()} == want:
                return value
        return 0.0

    async def wait_metric(
        self, actor: str, name: str, holds: Callable[[float], bool], what: str, timeout: float = 30, **labels: str
    ) -> float:
        """Wait until ``holds(sample)``; scrapes run in a thread so the gateway in this loop keeps serving."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await asyncio.to_thread(self.metric, actor, name, **labels)
            if holds(value):
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what} ({name} = {value})")
            await asyncio.sleep(0.02)

    async def wait_consuming(self, *actors: str, timeout: float = 60) -> None:
        """Until every sidecar's ``/readyz`` says it consumes (its queue exists, cancellations loaded)."""

        def ready(actor: str) -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[actor]}/readyz", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        for actor in actors:
            await until(functools.partial(ready, actor), f"sidecar {actor} consuming", timeout, every=0.1)

    def stored(self, job_id: str) -> list[Path]:
        """Objects happy-end or error-end stored for ``job_id`` (results and dead letters)."""
        return [p for p in self.store.rglob("*.json") if p.name == f"{job_id}.json"] if self.store.exists() else []

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.signal(15)
        for proc in self.procs:
            proc.stop()


async def until(condition: Callable[[], object], what: str, timeout: float = 30.0, every: float = 0.05) -> None:
    """Wait without blocking the loop (the gateway under test runs in it) until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(every)


async def inject(transport: Transport, actor: str, env: dict[str, Any]) -> None:
    """Publish ``env`` straight to ``actor``'s queue, as a system outside the gateway would."""
    await transport.ensure_queue(queue_name(actor))
    await transport.publish(queue_name(actor), encode_envelope(env))


def dead_letter(path: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(path.read_text())
    return record
