"""The runtime is one stdlib-only file that works copied anywhere, and agrees with contracts."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from runtime.conftest import RawClient, envelope
from support.procs import base_env, wait_until

from asya.contracts import protocol
from asya.runtime import server, source_path


def test_protocol_constants_match_contracts() -> None:
    for name in (
        "SOCKET_NAME",
        "READY_FILE",
        "MAX_FRAME_BYTES",
        "HELLO_KEY",
        "FEATURE_STREAM",
        "FEATURE_REUSE",
        "STREAM_ITEM",
        "STREAM_END",
        "SOCKET_DIR_DEFAULT",
        "PROTOCOL_VERSION",
    ):
        assert getattr(server, name) == getattr(protocol, name), name
    assert server.FRAME_HEADER.format == protocol.FRAME_HEADER.format


def test_imports_only_the_standard_library() -> None:
    tree = ast.parse(source_path().read_text())
    modules = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    modules |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


def test_copied_file_runs_outside_the_package(tmp_path: Path) -> None:
    import tempfile

    copy = tmp_path / "asya_runtime.py"
    shutil.copy(source_path(), copy)
    sock_dir = Path(tempfile.mkdtemp(prefix="asya-sock-"))
    env = base_env(ASYA_HANDLER="support.handlers.add_one", ASYA_SOCKET_DIR=sock_dir)
    # -I: isolated mode, so the installed asya package cannot be what makes it work
    proc = subprocess.Popen(
        [sys.executable, "-I", str(copy)], env=env, cwd=Path(__file__).parent.parent, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: (sock_dir / "runtime-ready").exists() or proc.poll() is not None, 15, what="ready file")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        c = RawClient(sock_dir / "asya-runtime.sock")
        c.send(envelope({"n": 1}))
        assert c.recv()[0]["payload"]["n"] == 2
        c.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_sigterm_the_moment_the_ready_file_exists_still_drains(tmp_path: Path) -> None:
    # Kubernetes may stop a pod right after it turned ready: the handler must already be installed.
    code = (
        "import os, signal, sys\n"
        "from asya.runtime import server\n"
        "start = server.Runtime.start\n"
        "async def start_then_sigterm(self):\n"
        "    await start(self)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "server.Runtime.start = start_then_sigterm\n"
        "sys.exit(server.main())\n"
    )
    env = base_env(ASYA_HANDLER="support.handlers.echo", ASYA_SOCKET_DIR=tmp_path / "s")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "signal received: draining 0 in-flight call(s)" in res.stderr
    assert not (tmp_path / "s" / "runtime-ready").exists()
