"""What a killed writer or a finished run leaves behind, and what dev run's queue check can see."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from support.procs import wait_until

from asya import transports
from asya.cli import results
from asya.cli.drain import QueueProbe
from asya.cli.supervisor import Supervisor
from asya.storage.objects import FileStore

_WRITER = """
import asyncio, sys
from pathlib import Path
from asya.storage.objects import FileStore
asyncio.run(FileStore(Path(sys.argv[1])).put("2026-01-01/c/big-1.json", b"x" * (256 << 20)))
"""


def test_a_writer_killed_mid_write_leaves_no_temp_file_among_the_results(tmp_path: Path) -> None:
    root = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)])
    try:
        temp = wait_until(lambda: next(root.rglob(".tmp-*"), None), timeout=30, what="the writer's temp file")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert temp.parent == root / FileStore.TEMP_DIR, f"temp file written next to the results: {temp}"
    assert results.scan(root).results == {}
    assert asyncio.run(FileStore(root).list_keys("")) == []


def test_a_new_store_sweeps_stale_temp_files_and_keeps_fresh_ones(tmp_path: Path) -> None:
    temp = tmp_path / FileStore.TEMP_DIR
    temp.mkdir()
    stale, fresh = temp / ".tmp-stale", temp / ".tmp-fresh"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    old = stale.stat().st_mtime - FileStore.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    FileStore(tmp_path)
    assert not stale.exists()
    assert fresh.exists(), "another process may still be writing a fresh temp file"


def test_the_summary_scan_ignores_and_sweep_removes_stray_temp_files(tmp_path: Path) -> None:
    day = tmp_path / "2026-01-01" / "c"
    day.mkdir(parents=True)
    (day / "r-1.json").write_text("{}")
    (day / ".tmp-abc").write_text("half a result")
    (tmp_path / "errors" / "2026-01-01" / "b").mkdir(parents=True)
    (tmp_path / "errors" / "2026-01-01" / "b" / "r%2F2.json").write_text("{}")
    scan = results.scan(tmp_path)
    assert set(scan.results) == {"r-1"} and set(scan.dead_letters) == {"r/2"}
    assert results.sweep_temp(tmp_path) == 1
    assert not (day / ".tmp-abc").exists() and (day / "r-1.json").exists()


async def test_the_supervisor_removes_its_socket_folders_on_stop(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    sock = supervisor.socket_dir("a", 0)
    await supervisor.start("sleeper", ["http.server", "0", "--bind", "127.0.0.1"], dict(os.environ))
    assert sock.is_dir()
    await supervisor.stop(grace_s=10)
    assert not supervisor.socket_root.exists()


async def test_the_local_queue_check_counts_leased_and_delayed_messages(tmp_path: Path) -> None:
    url = str(tmp_path / "queues")
    transport = transports.create(transports.TransportSettings(kind="local", url=url))
    await transport.connect()
    try:
        await transport.ensure_queue("q")
        await transport.publish("q", b"1")
        await transport.publish("q", b"2")
        await transport.publish("q", b"later", delay_s=60)
        stream = transport.consume("q", prefetch=1)
        leased = await asyncio.wait_for(anext(aiter(stream)), 10)
        assert await transport.queue_depth("q") <= 1  # what a consumer could take now: not enough to say "empty"
        assert await QueueProbe(transport, "local", url).pending(["q"]) == 3
        await leased.ack()
        assert await QueueProbe(transport, "local", url).pending(["q"]) == 2
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await transport.close()


async def test_the_supervisor_resumes_every_child_after_a_stop(tmp_path: Path) -> None:
    # dev run stops everything to re-check the queues and starts again when something was left
    supervisor = Supervisor(tmp_path)
    sock = supervisor.socket_dir("a", 0)
    child = await supervisor.start("sleeper", ["http.server", "0", "--bind", "127.0.0.1"], dict(os.environ))
    await supervisor.stop(grace_s=10)
    first = child.proc
    await supervisor.resume()
    try:
        assert child.proc is not first and child.proc is not None and child.proc.returncode is None
        assert sock.is_dir(), "the runtime and sidecar of a resumed replica need their socket folder back"
    finally:
        await supervisor.stop(grace_s=10)
    assert not supervisor.socket_root.exists()
