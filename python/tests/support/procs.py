"""Start real runtime / sidecar processes for tests and wait on conditions with deadlines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

TESTS_DIR = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def poll(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; at the deadline fail naming ``what`` and the last value.

    For slow conditions (a cluster, an apiserver): half-second polls, the last value in the message.
    """
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a child's health/metrics server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` on ``port`` as {sample with labels, exactly as exposed: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def base_env(**extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    """A child process whose output goes to a log file we can show on failure."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(5)
        self._log.close()
        return code

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(10)


def start_runtime(handler: str, socket_dir: Path, log_dir: Path, mode: str = "payload", **env: Any) -> Proc:
    """Start a runtime and fail unless it is up and ready."""
    proc = spawn_runtime(handler, socket_dir, log_dir, mode, **env)
    assert proc.alive(), f"runtime exited:\n{proc.log()}"
    return proc


def spawn_runtime(handler: str, socket_dir: Path, log_dir: Path, mode: str = "payload", **env: Any) -> Proc:
    """Start a runtime and wait until it is ready or has exited (a crash-looping handler may die at once)."""
    sock = socket_dir / "asya-runtime.sock"
    ready = socket_dir / "runtime-ready"
    for stale in (sock, ready):
        if stale.exists():
            stale.unlink()
    proc = Proc(
        [sys.executable, "-m", "asya.runtime"],
        base_env(ASYA_HANDLER=handler, ASYA_HANDLER_MODE=mode, ASYA_SOCKET_DIR=socket_dir, **env),
        log_dir / f"runtime-{handler.rsplit('.', 1)[-1]}-{time.monotonic_ns()}.log",
    )
    wait_until(lambda: ready.exists() or not proc.alive(), 15, what="runtime ready file")
    return proc


def start_sidecar(
    actor: str,
    socket_dir: Path,
    log_dir: Path,
    transport_env: Mapping[str, str],
    *,
    happy_end: str | None = None,
    error_end: str | None = None,
    **env: Any,
) -> Proc:
    """Start a sidecar for ``actor``; ``happy_end`` / ``error_end`` name its end actors (default: the shared ones)."""
    ends = {"ASYA_HAPPY_END_ACTOR": happy_end, "ASYA_ERROR_END_ACTOR": error_end}
    extra = {
        "ASYA_ACTOR": actor,
        "ASYA_SOCKET_DIR": socket_dir,
        "ASYA_HTTP_PORT": env.pop("ASYA_HTTP_PORT", 0),
        "ASYA_HTTP_HOST": "127.0.0.1",
        **{k: v for k, v in ends.items() if v is not None},
        **transport_env,
        **env,
    }
    return Proc(
        [sys.executable, "-m", "asya.sidecar"],
        base_env(**extra),
        log_dir / f"sidecar-{actor}-{time.monotonic_ns()}.log",
    )
