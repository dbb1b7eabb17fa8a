"""Every chart passes ``helm lint --strict``, its helm-unittest suites and ``ct lint``.

Run on the offline copy (ci/charts.sh offline): the umbrella's KEDA dependency is remote,
and ``helm lint`` refuses a chart whose dependencies are not in its charts/ folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helmtools import ROOT, Tools, chart_cases, chart_names

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("chart", "case", "values"), chart_cases(), ids=[f"{c}-{i}" for c, i, _ in chart_cases()])
def test_helm_lint_strict(tools: Tools, offline_charts: Path, chart: str, case: str, values: list[Path]) -> None:
    args: list[str | Path] = ["helm", "lint", "--strict", offline_charts / chart]
    for f in values:
        args += ["-f", f]
    out = tools.run(*args)
    assert "0 chart(s) failed" in out.stdout, out.stdout


@pytest.mark.parametrize("chart", chart_names())
def test_helm_unittest_suites(tools: Tools, offline_charts: Path, chart: str) -> None:
    suites = sorted((ROOT / "charts" / chart / "tests").glob("*_test.yaml"))
    assert suites, f"charts/{chart}/tests/ holds no helm-unittest suite (*_test.yaml)"
    out = tools.run("helm", "unittest", "--strict", "--color=false", offline_charts / chart)
    # a suite file that does not parse is skipped by the plugin, not failed: count them
    assert f"Test Suites: {len(suites)} passed, {len(suites)} total" in out.stdout, out.stdout


@pytest.mark.parametrize("chart", chart_names())
def test_ct_lint(tools: Tools, offline_charts: Path, chart: str) -> None:
    # ct.yaml: no maintainer check (a HEAD request to github.com), no version bump check
    # (needs a git remote), dependencies already built in the offline copy
    out = tools.run("ct", "lint", "--config", ROOT / "ct.yaml", "--charts", offline_charts / chart, cwd=ROOT)
    assert "All charts linted successfully" in out.stdout + out.stderr, out.stdout + out.stderr
