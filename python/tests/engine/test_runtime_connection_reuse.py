"""A sidecar reuses its pooled runtime connections: one per concurrent call, never one per envelope.

Found by ``make bench`` (sidecar CPU up ~20 %): a call finishing its connection a second time, after
the exchange had pooled it and another call had checked it out, closed that other call's socket; the
envelope was given back and the runtime had to accept a new connection. Real runtime, real sidecar
processor in this process (so its connects can be counted), local transport.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from support.procs import TESTS_DIR

from asya import transports
from asya.contracts import encode_envelope
from asya.engine import Engine, EngineSettings
from asya.sidecar.processing import RuntimeProcessor
from asya.sidecar.settings import SidecarSettings

N = 1000
PREFETCH = 64


@pytest.mark.timeout(120)
async def test_a_thousand_envelopes_use_at_most_prefetch_connections(tmp_path: Path) -> None:
    sock = tempfile.mkdtemp(prefix="asya-reuse-")
    env = {**os.environ, "ASYA_HANDLER": "support.handlers.echo", "ASYA_SOCKET_DIR": sock, "PYTHONPATH": str(TESTS_DIR)}
    runtime = subprocess.Popen([sys.executable, "-m", "asya.runtime"], env=env, stderr=subprocess.DEVNULL)
    ts = transports.TransportSettings(kind="local", url=str(tmp_path / "queues"))
    settings = SidecarSettings(engine=EngineSettings(actor="reuse", transport=ts, prefetch=PREFETCH), socket_dir=sock)
    processor = RuntimeProcessor(settings)
    opened = 0
    real_open = processor.runtime._open

    async def counting_open(*args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return await real_open(*args, **kwargs)

    processor.runtime._open = counting_open  # type: ignore[method-assign]
    engine = Engine(settings.engine, processor)
    bus = transports.create(ts)
    await bus.connect()
    try:
        for q in ("asya-reuse", "asya-next"):
            await bus.ensure_queue(q)
        for i in range(N):
            env_ = {"id": f"r{i}", "route": {"actors": ["reuse", "next"], "current": 0}, "payload": i}
            await bus.publish("asya-reuse", encode_envelope(env_))
        task = asyncio.create_task(engine.run())
        deadline = asyncio.get_running_loop().time() + 90
        while await bus.queue_depth("asya-next") < N:
            assert asyncio.get_running_loop().time() < deadline, "the envelopes did not all arrive"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        engine.stop()
        await asyncio.wait_for(task, 30)
    finally:
        await bus.close()
        runtime.terminate()
        runtime.wait(20)
    lost = engine.metrics.value("asya_sidecar_runtime_errors_total", actor="reuse", code="connection_error")
    assert lost == 0, f"{lost:g} calls lost their runtime connection"
    assert opened <= PREFETCH, f"{opened} runtime connections opened for {N} envelopes (concurrency {PREFETCH})"
