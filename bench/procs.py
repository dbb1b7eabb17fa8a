"""Real runtime / sidecar / celery processes for the benchmark, and their RSS.

Same shape as python/tests/support/procs.py (copied ideas, not imported: the
bench must not depend on the test tree). Every child logs to a file under the
run's work directory; a child that dies early is reported with its log tail.

Profiling (off by default; see docs/benchmarks.md):
- ``BENCH_PROFILE_SIDECAR=DIR`` runs every sidecar under cProfile and writes
  ``DIR/sidecar-<actor>-<n>.prof`` when it exits (SIGTERM exits cleanly).
- ``BENCH_PYSPY=DIR`` attaches ``py-spy record`` (sampling, low overhead; ``pip install
  py-spy`` into the venv first) to every sidecar and runtime and writes collapsed
  stacks to ``DIR/<name>-<n>.txt`` when the process exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
HANDLER = os.environ.get("BENCH_HANDLER", "bench.handlers.echo")
MIB = 1024 * 1024


def child_env(**extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("ASYA_LOG_LEVEL", "WARNING")
    env.update({k: str(v) for k, v in extra.items()})
    return env


_spied = 0


class Proc:
    """A child process whose output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        self.spy: subprocess.Popen[bytes] | None = None
        spy_dir = os.environ.get("BENCH_PYSPY")
        if spy_dir and name.split(" ")[0] in ("sidecar", "runtime"):
            self._attach_py_spy(Path(spy_dir))

    def _attach_py_spy(self, spy_dir: Path) -> None:
        global _spied
        _spied += 1
        spy_dir.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "py-spy"
        out = spy_dir / f"{self.name.replace(' ', '-')}-{_spied}.txt"
        self.spy = subprocess.Popen(
            [str(exe), "record", "--pid", str(self.pid), "--format", "raw", "--rate", "200",
             "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def rss_mib(self, children: bool = False) -> float:
        """Resident set size of the process (and, for pool parents, its children), MiB."""
        try:
            proc = psutil.Process(self.pid)
            total = proc.memory_info().rss
            if children:
                total += sum(c.memory_info().rss for c in proc.children(recursive=True))
            return float(total) / MIB
        except psutil.Error:
            return float("nan")

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the process log (e.g. the sidecar's "consuming" line)."""
        wait_for(lambda: text in self.log_path.read_text(errors="replace"), timeout, f"{self.name}: {text!r}", self)

    def cpu_s(self, children: bool = False) -> float:
        """User + system CPU seconds used so far (with ``children``: plus its live children's)."""
        return cpu_seconds(self.pid, children)

    def stop(self, timeout: float = 20.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(5)
        self._log.close()
        if self.spy is not None:  # py-spy writes its file once the target is gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.spy.wait(10)
        return code


def cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU seconds of ``pid`` (and its live descendants); NaN if it is gone."""
    try:
        proc = psutil.Process(pid)
        group = [proc, *(proc.children(recursive=True) if children else [])]
        total = 0.0
        for p in group:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total
    except psutil.Error:
        return float("nan")


def wait_for(predicate: Any, timeout: float, what: str, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None:
            proc.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def start_runtime(socket_dir: Path, log_dir: Path, name: str) -> Proc:
    socket_dir.mkdir(parents=True, exist_ok=True)
    ready = socket_dir / "runtime-ready"
    proc = Proc(
        f"runtime {name}",
        [sys.executable, "-m", "asya.runtime"],
        child_env(ASYA_HANDLER=HANDLER, ASYA_HANDLER_MODE="payload", ASYA_SOCKET_DIR=socket_dir),
        log_dir / f"runtime-{name}.log",
    )
    wait_for(ready.exists, 30, f"runtime {name} ready file", proc)
    return proc


_profiles = 0


def start_sidecar(
    actor: str, socket_dir: Path, log_dir: Path, transport: str, url: str, prefetch: int, **env: Any
) -> Proc:
    global _profiles
    args = [sys.executable, "-m", "asya.sidecar"]
    prof_dir = os.environ.get("BENCH_PROFILE_SIDECAR")
    if prof_dir:
        _profiles += 1
        Path(prof_dir).mkdir(parents=True, exist_ok=True)
        out = Path(prof_dir) / f"sidecar-{actor}-{_profiles}.prof"
        args = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "asya.sidecar"]
    extra = {
        "ASYA_ACTOR": actor,
        "ASYA_SOCKET_DIR": socket_dir,
        "ASYA_TRANSPORT": transport,
        "ASYA_TRANSPORT_URL": url,
        "ASYA_PREFETCH": prefetch,
        "ASYA_HTTP_PORT": 0,
        "ASYA_HTTP_HOST": "127.0.0.1",
        "ASYA_PROCESSING_TIMEOUT_S": 60,
        "ASYA_GRACEFUL_SHUTDOWN_S": 5,
        "ASYA_LOG_LEVEL": "INFO",  # start/stop lines only; nothing is logged per envelope
        **env,
    }
    return Proc(f"sidecar {actor}", args, child_env(**extra), log_dir / f"sidecar-{actor}.log")
