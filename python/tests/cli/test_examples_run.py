"""Every examples/NN-name/ pipeline runs to completion with `asya dev run` (so examples cannot rot)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asya.cli import results

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "pipeline.yaml").exists())
TEXT_PIPELINE = ROOT / "examples/01-text-pipeline/pipeline.yaml"


def dev_run(pipeline: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `asya dev run` to completion and fail with its output if it did not complete."""
    args = [
        sys.executable,
        "-m",
        "asya.cli",
        "dev",
        "run",
        str(pipeline),
        "--out",
        str(out),
        "--timeout",
        "240",
        *extra,
    ]
    res = subprocess.run(args, capture_output=True, text=True, timeout=280)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Pipeline complete" in res.stdout
    # the printed summary is the folders, not the reports
    printed = re.search(r"(\d+) result\(s\), (\d+) dead letter\(s\)", " ".join(res.stdout.split()))
    assert printed, res.stdout[-2000:]
    scan = results.scan(out / "results")
    assert (int(printed[1]), int(printed[2])) == (len(scan.results), len(scan.dead_letters))
    return res


def stored(out: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (out / "results").glob(pattern)]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_pipeline_completes_on_the_local_transport(example: Path, tmp_path: Path) -> None:
    dev_run(example / "pipeline.yaml", tmp_path)
    results = stored(tmp_path, "20*/*/*.json")
    assert results, "no results stored"
    for env in results:
        assert env["route"]["current"] == len(env["route"]["actors"])


@pytest.mark.timeout(300)
def test_text_insights_classifies_and_dead_letters_the_empty_document(tmp_path: Path) -> None:
    dev_run(TEXT_PIPELINE, tmp_path)
    results = stored(tmp_path, "20*/classify/*.json")
    topics = {(r["payload"]["doc"], r["payload"]["topic"]) for r in results}
    assert ("match-report", "sports") in topics
    assert ("chip-launch", "tech") in topics
    assert ("recipe", "food") in topics
    assert len({r["payload"]["doc"] for r in results}) == 7
    assert any(r.get("parent_id") for r in results), "long documents fan out into chunks"
    dead = list((tmp_path / "results" / "errors").rglob("*.json"))
    assert len(dead) == 1 and "empty-note" in dead[0].read_text()


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dev_run_on_rabbitmq(rabbitmq_server: Any, tmp_path: Path) -> None:
    dev_run(TEXT_PIPELINE, tmp_path, "--transport", "rabbitmq", "--url", rabbitmq_server.url)
    assert len({r["payload"]["doc"] for r in stored(tmp_path, "20*/classify/*.json")}) == 7
    assert len(list((tmp_path / "results" / "errors").rglob("*.json"))) == 1
