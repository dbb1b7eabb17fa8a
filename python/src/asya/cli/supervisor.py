"""Runs a local pipeline's processes and restarts the ones that die.

For each actor replica: one runtime (``python -m asya.runtime``) and one
sidecar (``python -m asya.sidecar``) sharing a private socket directory, plus
the crew actors (``python -m asya.crew happy-end|error-end``). A process that
exits while the pipeline runs is started again, the way the kubelet restarts a
container: this is what turns "the handler killed its process" into a
redelivery instead of a stuck pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path


@dataclasses.dataclass
class Child:
    """One supervised process."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0


class Supervisor:
    """Starts children, restarts them when they exit, stops them (sidecars first)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.socket_root = Path(tempfile.mkdtemp(prefix="asya-dev-"))  # AF_UNIX paths must stay short
        self._socket_dirs: list[Path] = []

    def socket_dir(self, actor: str, replica: int) -> Path:
        d = self.socket_root / f"{actor}-{replica}"
        d.mkdir(parents=True, exist_ok=True)
        self._socket_dirs.append(d)
        return d

    async def start(self, name: str, module_args: list[str], env: Mapping[str, str]) -> Child:
        child = Child(name, [sys.executable, "-m", *module_args], dict(env), self.log_dir / f"{name}.log")
        self.children.append(child)
        await self._spawn(child)
        self._watchers.append(asyncio.create_task(self._watch(child)))
        return child

    async def resume(self) -> None:
        """Start every child again after ``stop`` (same names, environments and socket folders)."""
        self._stopping = False
        for d in self._socket_dirs:
            d.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child)))

    async def _spawn(self, child: Child) -> None:
        with open(child.log_path, "ab") as log:
            child.proc = await asyncio.create_subprocess_exec(
                *child.args, env=child.env, stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True
            )

    async def _watch(self, child: Child) -> None:
        while not self._stopping:
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping:
                return
            child.restarts += 1
            with open(child.log_path, "a") as log:
                log.write(f"\n[asya dev] {child.name} exited with {code}; restart #{child.restarts}\n")
            await asyncio.sleep(min(0.2 * child.restarts, 2.0))  # back off like a crash-looping container
            if self._stopping:
                return
            await self._spawn(child)

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop every child (SIGTERM, then SIGKILL after ``grace_s``) and remove the socket folders."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        self._watchers.clear()
        # Sidecars first so they drain while runtimes still answer; then everything else.
        for group in (
            [c for c in self.children if c.name.startswith("sidecar")],
            [c for c in self.children if not c.name.startswith("sidecar")],
        ):
            for child in group:
                if child.proc and child.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.send_signal(signal.SIGTERM)
            for child in group:
                if child.proc is None:
                    continue
                try:
                    await asyncio.wait_for(child.proc.wait(), grace_s)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.kill()
                    await child.proc.wait()
        shutil.rmtree(self.socket_root, ignore_errors=True)


def child_env(extra: Mapping[str, str], pythonpath: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
