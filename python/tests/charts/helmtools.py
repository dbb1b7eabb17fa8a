"""What the chart tests share: where the charts are, the tools of ``ci/chart-tools.sh``, rendering.

The charts are found, not listed: every ``charts/*/Chart.yaml`` gets the generic tests, so a
chart that lands later is tested without touching this directory. Remote dependencies
(KEDA from https://kedacore.github.io/charts) cannot be fetched offline: rendering,
linting and installing use ``ci/charts.sh offline``, a copy without them (docs/helm.md).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
# ASYA_CHARTS_DIR points the tests at another copy (how a test was seen failing on a broken chart)
CHARTS = Path(os.environ.get("ASYA_CHARTS_DIR", ROOT / "charts"))
UMBRELLA = "asya"
CI_VALUES = ROOT / "ci" / "values"


def chart_names() -> list[str]:
    """Every chart in the repository (a folder of charts/ with a Chart.yaml)."""
    return sorted(p.parent.name for p in CHARTS.glob("*/Chart.yaml"))


def ci_values_files() -> list[Path]:
    """The umbrella's scenario values files (ci/values/*.yaml): linted, rendered, installed."""
    return sorted(CI_VALUES.glob("*.yaml"))


def values_cases(chart: str) -> list[tuple[str, list[Path]]]:
    """(id, values files) to render ``chart`` with: its defaults, each ``charts/<chart>/ci/*-values.yaml``
    (chart-testing's convention, ct lint uses them too) and, for the umbrella, each ci/values file."""
    cases: list[tuple[str, list[Path]]] = [("defaults", [])]
    cases += [(f"ci-{f.stem}", [f]) for f in sorted((CHARTS / chart / "ci").glob("*.yaml"))]
    if chart == UMBRELLA:
        cases += [(f.stem, [f]) for f in ci_values_files()]
    return cases


def chart_cases() -> list[tuple[str, str, list[Path]]]:
    """(chart, case id, values files) for every chart and values case."""
    return [(c, case, files) for c in chart_names() for case, files in values_cases(c)]


def tool_env(extra_path: Sequence[str] = ()) -> dict[str, str]:
    """The environment ``ci/chart-tools.sh env`` describes (builds the tools when missing)."""
    out = subprocess.run(
        [str(ROOT / "ci/chart-tools.sh"), "env"], capture_output=True, text=True, check=False, timeout=3600
    )
    if out.returncode != 0:
        raise RuntimeError(f"ci/chart-tools.sh env failed:\n{out.stderr[-3000:]}")
    # the lines are `export A="x" B="y"`, produced by our own script; $PATH is the only reference
    env = dict(os.environ)
    for line in out.stdout.splitlines():
        if not line.startswith("export "):
            continue
        for word in shlex.split(line[len("export ") :]):
            key, _, value = word.partition("=")
            env[key] = value.replace("$PATH", env.get("PATH", ""))
    if extra_path:
        env["PATH"] = os.pathsep.join([*extra_path, env["PATH"]])
    return env


class Tools:
    """Runs the chart tools with the isolated Helm homes and plugin dir."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    @property
    def helm4(self) -> str:
        return self.env["ASYA_HELM4"]

    def run(
        self,
        *cmd: str | Path,
        check: bool = True,
        timeout: float = 300,
        cwd: Path | None = None,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd``; on failure (with ``check``) the assertion message carries its output."""
        args = [str(c) for c in cmd]
        res = subprocess.run(
            args, capture_output=True, text=True, env=self.env, timeout=timeout, cwd=cwd, check=False, input=input_text
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"`{' '.join(args)}` exited {res.returncode}\n--- stdout\n{res.stdout[-6000:]}\n"
                f"--- stderr\n{res.stderr[-6000:]}"
            )
        return res

    def template(self, chart_dir: Path, values: Sequence[Path] = (), *extra: str) -> str:
        """``helm template`` (CRDs included) of ``chart_dir`` into namespace ``asya``."""
        args: list[str | Path] = ["helm", "template", "asya", chart_dir, "--namespace", "asya", "--include-crds"]
        for f in values:
            args += ["-f", f]
        return self.run(*args, *extra).stdout


def docs(manifest: str) -> list[dict[str, Any]]:
    """The objects of a multi-document manifest (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(manifest) if d]


def by_subchart(manifest: str) -> list[tuple[str, dict[str, Any]]]:
    """(subchart, object) for each object, from Helm's ``# Source: <chart>/charts/<sub>/...`` lines.

    The subchart is the folder name under charts/ (the alias when the umbrella sets one);
    objects of the chart itself get its own name.
    """
    out = []
    for part in manifest.split("\n---"):
        obj = yaml.safe_load(part)
        if not obj:
            continue
        source = next((ln.split(":", 1)[1].strip() for ln in part.splitlines() if ln.startswith("# Source:")), "")
        pieces = source.split("/")
        out.append((pieces[2] if len(pieces) > 3 and pieces[1] == "charts" else pieces[0], obj))
    return out


def offline_copy(tools: Tools, dest: Path) -> Path:
    """``ci/charts.sh offline DEST``: every chart, remote dependencies removed, file:// ones built."""
    out = tools.run(ROOT / "ci/charts.sh", "offline", dest, timeout=600).stdout
    return Path(out.strip().splitlines()[-1])
