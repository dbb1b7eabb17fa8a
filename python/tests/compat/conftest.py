"""Compatibility harness: our sidecar beside a stand-in 0.1.x runtime (or our own runtime) on real RabbitMQ."""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sidecar.conftest import Bus
from support.procs import Proc, base_env, start_runtime, start_sidecar, wait_until

from asya import transports

LEGACY_RUNTIME = Path(__file__).resolve().parent / "legacy_runtime.py"


@pytest.fixture
async def rabbit_bus(rabbitmq_server: Any) -> AsyncIterator[Bus]:
    transport = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url))
    await transport.connect()
    yield Bus(transport, uuid.uuid4().hex[:6])
    await transport.close()


class Procs:
    """Processes a test starts; stopped (and their logs shown on failure) at the end."""

    def __init__(self, rabbitmq_url: str, log_dir: Path) -> None:
        self.url = rabbitmq_url
        self.log_dir = log_dir
        self.started: list[Proc] = []
        self.last_sidecar_log = ""

    def socket_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="asya-c-"))  # AF_UNIX paths must stay short

    def legacy_runtime(self, socket_dir: Path) -> Proc:
        proc = Proc(
            [sys.executable, str(LEGACY_RUNTIME)],
            base_env(ASYA_SOCKET_DIR=socket_dir),
            self.log_dir / "legacy-runtime.log",
        )
        self.started.append(proc)
        wait_until(lambda: (socket_dir / "runtime-ready").exists() or not proc.alive(), 15, what="legacy ready file")
        assert proc.alive(), proc.log()
        return proc

    def runtime(self, handler: str, socket_dir: Path, mode: str = "payload") -> Proc:
        proc = start_runtime(f"compat.compat_handlers.{handler}", socket_dir, self.log_dir, mode)
        self.started.append(proc)
        return proc

    def sidecar(self, actor: str, socket_dir: Path, **env: Any) -> Proc:
        transport_env = {"ASYA_TRANSPORT": "rabbitmq", "ASYA_TRANSPORT_URL": self.url}
        proc = start_sidecar(actor, socket_dir, self.log_dir, transport_env, **env)
        self.started.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} ---\n{p.log()[-4000:]}" for p in self.started)


@pytest.fixture
def procs(rabbitmq_server: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Procs]:
    p = Procs(rabbitmq_server.url, tmp_path)
    yield p
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(p.logs())
    for proc in reversed(p.started):
        proc.stop()
