"""The umbrella chart ships the dashboards and alert rules of dashboards/ unchanged (copies Helm can read)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from helmtools import CHARTS, CI_VALUES, ROOT, UMBRELLA, Tools, docs

SOURCES = {
    "dashboards": sorted((ROOT / "dashboards").glob("*.json")),
    "rules": sorted((ROOT / "dashboards" / "rules").glob("*.rules.yml")),
}


def test_chart_copies_are_the_same_bytes_as_dashboards() -> None:
    for folder, sources in SOURCES.items():
        assert sources, f"no {folder} in dashboards/"
        copies = sorted((CHARTS / UMBRELLA / "files" / folder).glob("*"))
        assert [c.name for c in copies] == [s.name for s in sources], f"charts/asya/files/{folder}: run `make charts`"
        stale = [c.name for c, s in zip(copies, sources, strict=True) if c.read_bytes() != s.read_bytes()]
        assert not stale, f"charts/asya/files/{folder} differs from dashboards/ (run `make charts`): {stale}"


def test_rendered_dashboards_and_prometheus_rule_hold_the_source_files(tools: Tools, offline_charts: Path) -> None:
    rendered = docs(tools.template(offline_charts / UMBRELLA, [CI_VALUES / "monitoring.yaml"]))
    maps = [d for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard")]
    shipped = {key: json.loads(value) for m in maps for key, value in m["data"].items()}
    assert shipped == {p.name: json.loads(p.read_text()) for p in SOURCES["dashboards"]}
    assert all(m["metadata"]["annotations"] == {"grafana_folder": "Asya"} for m in maps)
    rules = [d for d in rendered if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    want = [g for p in SOURCES["rules"] for g in yaml.safe_load(p.read_text())["groups"]]
    assert rules[0]["spec"]["groups"] == want, "the PrometheusRule is not the rule file (a Helm template ate a {{ }}?)"
    monitors = sorted((d["kind"], d["metadata"]["name"]) for d in rendered if d["kind"].endswith("Monitor"))
    assert monitors == [
        ("PodMonitor", "asya-actors"),
        ("PodMonitor", "asya-operator"),
        ("ServiceMonitor", "asya-gateway"),
    ]


def test_defaults_render_no_prometheus_operator_objects(tools: Tools, offline_charts: Path) -> None:
    kinds = {d["kind"] for d in docs(tools.template(offline_charts / UMBRELLA))}
    assert not kinds & {"PrometheusRule", "PodMonitor", "ServiceMonitor"}, "a cluster without those CRDs must install"
