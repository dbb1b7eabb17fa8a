from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.procs import Proc, spawn_runtime, wait_until


class RawClient:
    """Speaks SPEC section 3 with nothing but the socket module: any sidecar could."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))

    def send(self, obj: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(obj).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def recv(self) -> Any:
        (size,) = struct.unpack(">I", self._exact(4))
        return json.loads(self._exact(size).decode("utf-8"))

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("runtime closed the connection")
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def socket_dir(tmp_path: Path) -> Path:
    # AF_UNIX paths are limited to ~107 bytes; pytest tmp paths can be longer.
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="asya-sock-"))
    return d


REPO = Path(__file__).resolve().parents[3]
RUNTIME_DIR = REPO / "python" / "src" / "asya" / "runtime"
TESTS_DIR = REPO / "python" / "tests"
SKIP_PY39 = "ASYA_SKIP_PY39"


@pytest.fixture(scope="session")
def py39_root() -> Path:
    """Debian bullseye rootfs (python3.9) built or found by ci/py39.sh; failing to get it fails the tests."""
    if os.environ.get(SKIP_PY39) == "1":
        pytest.skip(f"{SKIP_PY39}=1: runtime tests on Python 3.9 explicitly turned off")
    try:
        res = subprocess.run([str(REPO / "ci" / "py39.sh")], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("ci/py39.sh did not build the bullseye rootfs within 900s", pytrace=False)
    if res.returncode != 0:
        pytest.fail(
            f"the Python 3.9 runtime tests need a Debian bullseye rootfs and ci/py39.sh could not build it "
            f"(exit {res.returncode}); set {SKIP_PY39}=1 to run without them.\n{res.stderr[-3000:]}",
            pytrace=False,
        )
    root = Path(res.stdout.strip().splitlines()[-1])
    for mount_point in ("asya/tests", "asya/runtime"):
        (root / mount_point).mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(
        ["chroot", str(root), "/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.stdout.strip() != "(3, 9)":
        pytest.fail(f"{root}: /usr/bin/python3 is not Python 3.9: {probe.stdout}{probe.stderr}", pytrace=False)
    return root


def py39_command(root: Path) -> list[str]:
    """server.py run as a copied single file by bullseye's /usr/bin/python3 (3.9), in a chroot.

    A private mount namespace holds the bind mounts (host /tmp for sockets and test files,
    the runtime and the test handlers), so nothing stays mounted when the process ends; each
    step execs the next, so the pid the test signals is the interpreter's.
    """
    script = (
        'mount --bind /tmp "$1/tmp" && mount --bind "$2" "$1/asya/tests" && mount --bind "$3" "$1/asya/runtime" '
        '&& exec chroot "$1" /usr/bin/python3 /asya/runtime/server.py'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root), str(TESTS_DIR),
            str(RUNTIME_DIR)]  # fmt: skip


class Launcher:
    """Starts runtimes on one interpreter: the host's, or bullseye's Python 3.9."""

    def __init__(self, interpreter: str, root: Path | None, socket_dir: Path, log_dir: Path) -> None:
        self.interpreter = interpreter
        self.root = root
        self.socket_dir = socket_dir
        self.log_dir = log_dir
        self.started: list[Proc] = []

    def __call__(self, handler: str, mode: str = "payload", **env: Any) -> Proc:
        proc = self.spawn(handler, mode, **env)
        assert proc.alive(), f"runtime ({self.interpreter}) exited:\n{proc.log()}"
        return proc

    def spawn(self, handler: str, mode: str = "payload", **env: Any) -> Proc:
        """Start and wait until ready or exited."""
        path = f"support.handlers.{handler}"
        if self.root is None:
            proc = spawn_runtime(path, self.socket_dir, self.log_dir, mode, **env)
            self.started.append(proc)
            return proc
        ready = self.socket_dir / "runtime-ready"
        child_env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": "/asya/tests",
            "PYTHONUNBUFFERED": "1",
            "ASYA_HANDLER": path,
            "ASYA_HANDLER_MODE": mode,
            "ASYA_SOCKET_DIR": str(self.socket_dir),
            **{k: str(v) for k, v in env.items()},
        }
        log = self.log_dir / f"runtime39-{handler}-{time.monotonic_ns()}.log"
        proc = Proc(py39_command(self.root), child_env, log)
        self.started.append(proc)
        wait_until(lambda: ready.exists() or not proc.alive(), 20, what="python3.9 runtime ready file")
        return proc


@pytest.fixture(params=["host", "py39"])
def interpreter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runtime(interpreter: str, request: pytest.FixtureRequest, socket_dir: Path, tmp_path: Path) -> Iterator[Launcher]:
    root = request.getfixturevalue("py39_root") if interpreter == "py39" else None
    launcher = Launcher(interpreter, root, socket_dir, tmp_path)
    yield launcher
    for proc in launcher.started:
        proc.stop()


@pytest.fixture
def client(socket_dir: Path) -> Iterator[Callable[[], RawClient]]:
    opened: list[RawClient] = []

    def connect() -> RawClient:
        c = RawClient(socket_dir / "asya-runtime.sock")
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def envelope(payload: Any, actors: list[str] | None = None, current: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": "e-1", "route": {"actors": actors or ["a", "b"], "current": current}, "payload": payload, **extra}
