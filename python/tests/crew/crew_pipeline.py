"""Harness for crew pipeline tests: real sidecar + runtime processes per actor, real crew processes.

Test modules import this as ``crew_pipeline``. Every run gets unique actor
names, so queues never mix between tests on a shared broker; the crew queues
(``asya-happy-end``, ``asya-error-end``) are shared by design, so accounting
always filters on the run's own envelope ids.

Accounting (``account``) counts two things per id: the objects stored (results
and dead letters) and the crew's final reports (``succeeded`` per store,
``failed`` per dead letter) caught by a ``RecordingGateway``. Stored keys are
deterministic, so a second store of the same envelope overwrites the first;
only the reports see that it happened twice.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.server
import json
import sqlite3
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from support.procs import Proc, base_env, spawn_runtime, start_runtime, start_sidecar, wait_until

from asya.transports import local


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

    def start_crew(self, gateway: RecordingGateway | None = None) -> None:
        """Start happy-end and error-end; with ``gateway``, they send their final reports there."""
        extra = {"ASYA_GATEWAY_URL": gateway.url} if gateway else {}
        for actor in ("happy-end", "error-end"):
            env = base_env(**{**self.transport_env, "ASYA_STORAGE_URL": self.storage_url, **extra, **self.crew_env})
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


def local_held(transport_url: str, queue: str) -> int:
    """Messages in a local-transport queue, counting delayed and leased (received, not yet settled) ones.

    ``queue_depth`` counts only visible messages, so it reads 0 while a consumer still
    holds a delivery or a delayed retry waits; the queue file itself holds every message.
    """
    with contextlib.closing(sqlite3.connect(Path(transport_url) / local.DB_FILE)) as db:
        return int(db.execute("SELECT COUNT(*) FROM messages WHERE queue = ?", (queue,)).fetchone()[0])


FINAL_STATUSES = frozenset({"succeeded", "failed"})
"""Final reports that end an envelope (``retrying`` does not)."""


class RecordingGateway:
    """A stand-in for the gateway on loopback that keeps every ``POST /jobs/<id>/final`` body.

    Progress reports and anything else get a 200 and are ignored. Use as a context manager.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finals: list[dict[str, Any]] = []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the crew's client reuses connections

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
                if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "final":
                    gateway._record(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per report would drown the test output

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._finals.append(report)

    def finals(self, ids: set[str]) -> collections.Counter[str]:
        """How many final reports (succeeded or failed) each of ``ids`` got."""
        with self._lock:
            return collections.Counter(
                r["id"] for r in self._finals if r.get("id") in ids and r.get("status") in FINAL_STATUSES
            )

    def __enter__(self) -> RecordingGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclasses.dataclass(frozen=True)
class Accounting:
    """Where each of a run's ids ended, from the store and the final reports."""

    results: dict[str, list[Path]]
    dead: dict[str, list[Path]]
    finals: collections.Counter[str]
    lost: frozenset[str]
    """Neither stored as a result nor as a dead letter."""
    duplicated: frozenset[str]
    """Stored more than once (two objects, or result and dead letter) or finally reported more than once."""
    unreported: frozenset[str]
    """Stored but never reported: their report count says nothing, so duplicates could hide there."""


def account(root: Path, ids: set[str], gateway: RecordingGateway | None) -> Accounting:
    """Count stores and final reports per id. Read it after the crew stopped, so no report is still on its way.

    Without ``gateway`` (the benchmark's like-for-like run) only the store is counted.
    """
    results, dead = scan(root, ids)
    finals = gateway.finals(ids) if gateway is not None else collections.Counter()
    stored = set(results) | set(dead)
    return Accounting(
        results=results,
        dead=dead,
        finals=finals,
        lost=frozenset(ids - stored),
        duplicated=frozenset(i for i in ids if len(results.get(i, ())) + len(dead.get(i, ())) > 1 or finals[i] > 1),
        unreported=frozenset(stored - set(finals)) if gateway is not None else frozenset(),
    )


__all__ = [
    "Accounting",
    "PipelineRun",
    "RecordingGateway",
    "account",
    "local_held",
    "scan",
    "wait_accounted",
    "wait_until",
]
