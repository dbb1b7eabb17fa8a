"""crds/ is the one source: every copy of the CRD is the same bytes, the rendered ClusterRole the same rules."""

from __future__ import annotations

from pathlib import Path

import yaml
from helmtools import CHARTS, ROOT, Tools, docs

CRD = ROOT / "crds" / "asyncactor.yaml"
RBAC = ROOT / "crds" / "rbac" / "operator.yaml"
OPERATOR = "asya-operator"


def _copies() -> list[Path]:
    """Every asyncactor.yaml outside crds/ (chart, packaged into the Python distribution, ...)."""
    skip = {".git", ".venv", ".tools", "node_modules", "build", "dist"}
    out = []
    outside = not CHARTS.is_relative_to(ROOT)  # ASYA_CHARTS_DIR: a copy elsewhere replaces charts/
    found = [*ROOT.rglob("asyncactor.yaml"), *(CHARTS.rglob("asyncactor.yaml") if outside else [])]
    for path in found:
        if outside and path.is_relative_to(ROOT / "charts"):
            continue
        rel = path.relative_to(ROOT if path.is_relative_to(ROOT) else CHARTS)
        if path != CRD and not skip.intersection(rel.parts) and ".egg-info" not in str(rel):
            out.append(path)
    return sorted(out)


def test_operator_chart_ships_the_crd() -> None:
    assert CHARTS / OPERATOR / "crds" / "asyncactor.yaml" in _copies(), "charts/asya-operator/crds/ has no CRD copy"


def test_every_crd_copy_is_identical() -> None:
    source = CRD.read_bytes()
    stale = [str(p) for p in _copies() if p.read_bytes() != source]
    assert not stale, f"differ from crds/asyncactor.yaml (run `make charts`): {stale}"


def test_rendered_cluster_role_has_the_rules_of_crds_rbac(tools: Tools) -> None:
    rendered = [d for d in docs(tools.template(CHARTS / OPERATOR)) if d["kind"] == "ClusterRole"]
    assert len(rendered) == 1, f"the operator chart renders {len(rendered)} ClusterRoles"
    want = yaml.safe_load(RBAC.read_text())["rules"]
    assert rendered[0]["rules"] == want, "the chart's ClusterRole rules differ from crds/rbac/operator.yaml"
