"""`asya dev run` uses the same transport options as its child processes (e.g. a queue prefix)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.rabbitmq import queue_exists

from asya.cli import results

ROOT = Path(__file__).resolve().parents[3]
TEXT_PIPELINE = ROOT / "examples/01-text-pipeline/pipeline.yaml"


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dev_run_with_a_queue_prefix_completes_on_the_prefixed_queues(rabbitmq_server: Any, tmp_path: Path) -> None:
    env = {**os.environ, "ASYA_TRANSPORT_OPT_QUEUE_PREFIX": "devpfx-"}
    args = [sys.executable, "-m", "asya.cli", "dev", "run", str(TEXT_PIPELINE), "--out", str(tmp_path)]
    args += ["--timeout", "120", "--transport", "rabbitmq", "--url", rabbitmq_server.url]
    res = subprocess.run(args, capture_output=True, text=True, timeout=200, env=env)
    assert res.returncode == 0 and "Pipeline complete" in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]
    assert len(results.scan(tmp_path / "results").results) > 0
    assert queue_exists(rabbitmq_server.url, "devpfx-classify"), "the actors did not use the prefixed queue"
