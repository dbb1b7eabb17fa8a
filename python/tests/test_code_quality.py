"""The code base stays clean: ruff, ruff format, mypy --strict and the import-linter contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "src", "tests"],
        ["ruff", "format", "--check", "src", "tests"],
        ["mypy"],
        ["lint-imports"],
    ],
    ids=["ruff", "ruff-format", "mypy", "import-linter"],
)
def test_linter_passes(command: list[str]) -> None:
    res = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=PYTHON_DIR, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]


def test_no_module_over_400_lines() -> None:
    big = {
        str(p.relative_to(PYTHON_DIR)): n
        for p in (PYTHON_DIR / "src").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 450
    }
    assert not big, f"split these modules by concern: {big}"
