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


# Modules that may exceed the limit, each with the reason it cannot be split.
OVER_LIMIT_ALLOWED = {
    # SPEC 4: the operator can inject the runtime into any user image as one file that
    # imports with the standard library alone, so it cannot lean on sibling modules.
    "src/asya/runtime/server.py",
}
MAX_LINES = 400


def test_no_module_over_400_lines() -> None:
    big = {
        rel: n
        for p in (PYTHON_DIR / "src").rglob("*.py")
        if (rel := str(p.relative_to(PYTHON_DIR))) not in OVER_LIMIT_ALLOWED
        and (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"split these modules by concern: {big}"


def test_over_limit_allowance_names_existing_files() -> None:
    # A stale entry would silently allow a future module with that name to grow.
    missing = [rel for rel in OVER_LIMIT_ALLOWED if not (PYTHON_DIR / rel).is_file()]
    assert not missing, f"remove these from OVER_LIMIT_ALLOWED: {missing}"
