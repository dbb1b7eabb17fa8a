"""The onboarding guide's ``ASYA_SOCKETS_DIR`` works for the runtime; two spellings that disagree refuse to start."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from support.procs import base_env, wait_until

from asya.runtime import server, source_path


def test_the_guide_spelling_places_the_socket() -> None:
    sock = Path(tempfile.mkdtemp(prefix="asya-sd-"))
    proc = subprocess.Popen(
        [sys.executable, str(source_path())],
        env=base_env(ASYA_HANDLER="support.handlers.echo", ASYA_SOCKETS_DIR=str(sock)),
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: (sock / server.READY_FILE).exists(), timeout=20, what="ready file in ASYA_SOCKETS_DIR")
        assert (sock / server.SOCKET_NAME).exists()
    finally:
        proc.terminate()
        proc.wait(20)


def test_two_spellings_that_disagree_refuse_to_start() -> None:
    done = subprocess.run(
        [sys.executable, str(source_path())],
        env=base_env(ASYA_HANDLER="support.handlers.echo", ASYA_SOCKET_DIR="/tmp/a", ASYA_SOCKETS_DIR="/tmp/b"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "ASYA_SOCKET_DIR" in done.stderr and "ASYA_SOCKETS_DIR" in done.stderr and "Traceback" not in done.stderr
