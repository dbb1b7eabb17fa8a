"""Harness for crew pipeline tests: real sidecar + runtime processes per actor, real crew processes.

Test modules import this as ``crew_pipeline``. Every run gets unique actor
names, so queues never mix between tests on a shared broker; the crew queues
(``asya-happy-end``, ``asya-error-end``) are shared by design, so accounting
always filters on the run's own envelope ids.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from support.procs import Proc, base_env, spawn_runtime, start_runtime, start_sidecar, wait_until


class PipelineRun:
    """Processes of one pipeline run; ``stop()`` ends them all."""

    def __init__(self, tmp: Path, transport_env: dict[str, str], storage_url: str, **crew_env: Any) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.transport_env = transport_env
        self.storage_url = storage_url
        self.crew_env = {k: str(v) for k, v in crew_env.items()}
        self.suffix = uuid.uuid4().hex[:6]
        self.procs: list[Proc] = []
        self.restarts = 0
        self._runtimes: list[tuple[int, str, Path, dict[str, Any]]] = []
        self._stopping = threading.Event()
        self._kubelet: threading.Thread | None = None

    def actor(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def start_crew(self) -> None:
        for actor in ("happy-end", "error-end"):
            env = base_env(**{**self.transport_env, "ASYA_STORAGE_URL": self.storage_url, **self.crew_env})
            self.procs.append(Proc([sys.executable, "-m", "asya.crew", actor], env, self.logs / f"{actor}.log"))

    def start_actor(
        self,
        actor: str,
        handler: str,
        *,
        replicas: int = 1,
        runtime_env: dict[str, Any] | None = None,
        sidecar_env: dict[str, Any] | None = None,
    ) -> None:
        for replica in range(replicas):
            sock = Path(self.tmp / f"sock-{actor}-{replica}")
            sock.mkdir(parents=True, exist_ok=True)
            renv = {"ASYA_ACTOR": actor, **(runtime_env or {})}
            self._runtimes.append((len(self.procs), handler, sock, renv))
            self.procs.append(start_runtime(handler, sock, self.logs, **renv))
            extra = {"ASYA_PROCESSING_TIMEOUT_S": 30, **(sidecar_env or {})}
            self.procs.append(start_sidecar(actor, sock, self.logs, self.transport_env, **extra))

    def restart_dead_runtimes(self) -> None:
        """Play kubelet: a runtime container that exits is started again (in a background thread)."""

        def loop() -> None:
            while not self._stopping.wait(0.05):
                for index, handler, sock, renv in self._runtimes:
                    if not self.procs[index].alive() and not self._stopping.is_set():
                        self.restarts += 1
                        self.procs[index] = spawn_runtime(handler, sock, self.logs, **renv)

        self._kubelet = threading.Thread(target=loop, daemon=True)
        self._kubelet.start()

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in self.procs)

    def stop(self) -> None:
        self._stopping.set()
        if self._kubelet is not None:
            self._kubelet.join(30)
        for proc in self.procs:
            proc.signal(15)
        for proc in self.procs:
            proc.stop()


def scan(root: Path, ids: set[str]) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Stored results and dead letters of ``ids`` in a folder store: id -> files."""
    results: dict[str, list[Path]] = {}
    dead: dict[str, list[Path]] = {}
    if not root.exists():
        return results, dead
    for path in root.rglob("*.json"):
        top = path.relative_to(root).parts[0]
        if path.name.startswith(".tmp-") or top in {"blobs", "replayed"}:
            continue
        try:
            env_id = json.loads(path.read_bytes()).get("id")
        except ValueError:
            continue
        if env_id in ids:
            (dead if top == "errors" else results).setdefault(env_id, []).append(path)
    return results, dead


def wait_accounted(root: Path, ids: set[str], timeout: float, run: PipelineRun) -> None:
    """Wait until every id is stored as a result or a dead letter."""
    deadline = time.monotonic() + timeout
    while True:
        results, dead = scan(root, ids)
        if len(set(results) | set(dead)) >= len(ids):
            return
        if time.monotonic() > deadline:
            missing = sorted(ids - set(results) - set(dead))
            raise AssertionError(
                f"{len(missing)} of {len(ids)} envelope(s) unaccounted after {timeout}s, e.g. {missing[:5]}\n"
                + run.logs_text()
            )
        time.sleep(0.2)


__all__ = ["PipelineRun", "scan", "wait_accounted", "wait_until"]
