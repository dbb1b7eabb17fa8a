"""Chart READMEs are helm-docs output of the committed values, and every value is documented.

helm-docs runs on a scratch copy of charts/ (so the committed files are never touched) with
the flags ``ci/charts.sh docs`` uses; a README that differs is stale. A second run with a
one-line template lists each value helm-docs sees with its ``# --`` description: an empty
one is an undocumented value.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from helmtools import CHARTS, Tools, chart_names

# `# -- text` lands in AutoDescription; `# key -- text` (the older form) in Description
KEYS_TEMPLATE = '{{ range .Values }}{{ .Key }}\t{{ .Description }}{{ .AutoDescription | replace "\\n" " " }}\n{{ end }}'


@pytest.fixture(scope="module")
def generated(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """charts/ copied, then helm-docs run over it exactly as ``ci/charts.sh docs`` does."""
    copy = tmp_path_factory.mktemp("helm-docs") / "charts"
    shutil.copytree(CHARTS, copy, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    tools.run("helm-docs", "--chart-search-root", copy, cwd=copy)
    return copy


@pytest.fixture(scope="module")
def value_docs(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("helm-docs-keys") / "charts"
    shutil.copytree(CHARTS, copy, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    template = copy.parent / "keys.gotmpl"
    template.write_text(KEYS_TEMPLATE)
    tools.run(
        "helm-docs", "--chart-search-root", copy, "--template-files", template, "--output-file", "KEYS.txt", cwd=copy
    )
    return copy


@pytest.mark.parametrize("chart", chart_names())
def test_readme_is_fresh(generated: Path, chart: str) -> None:
    committed = CHARTS / chart / "README.md"
    assert committed.exists(), f"charts/{chart}/README.md is missing: run ci/charts.sh docs"
    fresh = (generated / chart / "README.md").read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.read_text().splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            f"charts/{chart}/README.md (committed)",
            "helm-docs output",
        )
    )
    assert not diff, f"charts/{chart}/README.md is stale; run ci/charts.sh docs\n{diff[:4000]}"


@pytest.mark.parametrize("chart", chart_names())
def test_every_value_is_documented(value_docs: Path, chart: str) -> None:
    rows = [line.split("\t", 1) for line in (value_docs / chart / "KEYS.txt").read_text().splitlines() if line]
    assert rows, f"helm-docs found no values in charts/{chart}/values.yaml"
    missing = [key for key, *desc in rows if not "".join(desc).strip()]
    assert not missing, f"charts/{chart}/values.yaml: no `# --` comment for {missing}"
