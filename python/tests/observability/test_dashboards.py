"""Structure of the Grafana dashboards: generated, valid, every panel queried with a unit, no fixed datasource."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
import yaml
from dashboard_model import BUILTIN, DASHBOARDS_DIR, METRIC, VARIABLE, dashboards, panels

from asya.contracts import metrics as contract

# The only families from other exporters the dashboards may read (all listed in contract.EXTERNAL).
EXTERNAL_ALLOWED = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "kube_deployment_status_replicas",
}


def generated() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARDS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: module.render(model) for name, model in module.DASHBOARDS.items()}


def test_the_json_files_are_what_generate_py_writes() -> None:
    for name, text in generated().items():
        assert (DASHBOARDS_DIR / name).read_text() == text, f"dashboards/{name} is stale: run dashboards/generate.py"
    assert set(dashboards()) == set(generated()), "a dashboard JSON that generate.py does not write"


def test_external_metrics_are_an_explicit_short_list() -> None:
    assert set(contract.EXTERNAL) >= EXTERNAL_ALLOWED


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_model(name: str) -> None:
    model = dashboards()[name]
    assert 39 <= model["schemaVersion"] <= 41 and model["uid"] and model["title"]
    defined = {v["name"]: v for v in model["templating"]["list"]}
    assert defined.get("datasource", {}).get("type") == "datasource", "a datasource variable"
    assert defined["datasource"]["query"] == "prometheus"
    assert "label_values(asya_" in json.dumps(defined.get("actor", {}).get("query")), (
        "an actor variable on asya metrics"
    )
    ids = [p["id"] for p in panels(model)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for uid in set(re.findall(r'"uid": "([^"]*)"', json.dumps(model))) - {model["uid"]}:
        assert uid == "${datasource}", f"a fixed datasource uid {uid!r}: use the datasource variable"
    known = {m for m in contract.known_series() if m.startswith("asya_")} | EXTERNAL_ALLOWED
    for p in panels(model):
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), f"panel {p['title']!r} has no unit"
        assert p["targets"], f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t.get("expr"), f"panel {p['title']!r} has a target without expr"
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            used = set(VARIABLE.findall(t["expr"]))
            assert used <= set(defined) | BUILTIN, (
                f"{p['title']!r} uses undefined variables {used - set(defined) - BUILTIN}"
            )
            unknown = set(METRIC.findall(t["expr"])) - known
            assert not unknown, f"{p['title']!r} uses metrics that are not in the contract table: {unknown}"


def _docs_module() -> object:
    spec = importlib.util.spec_from_file_location(
        "observability_docs", DASHBOARDS_DIR.parent / "ci" / "observability-docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_observability_is_generated_and_names_every_alert() -> None:
    docs: Any = _docs_module()
    text = (DASHBOARDS_DIR.parent / "docs" / "observability.md").read_text()
    assert text == docs.doc(), "docs/observability.md is stale: ci/observability-docs.py doc > docs/observability.md"
    alerts = [r["alert"] for r in docs.alerts()]
    assert alerts, "no alerts found in dashboards/rules/"
    for alert in alerts:
        assert f"| {alert} |" in text, f"docs/observability.md does not describe alert {alert}"
    for name, model in dashboards().items():
        for p in panels(model):
            picture = DASHBOARDS_DIR.parent / "docs" / docs.IMG / f"{docs.slug(name, p['title'])}.png"
            assert picture.is_file(), f"no picture {picture.name} for panel {p['title']!r}"


def test_every_metric_the_alert_rules_use_is_in_the_contract() -> None:
    known = contract.known_series()
    for path in sorted((DASHBOARDS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = set(METRIC.findall(rule["expr"])) - known
                assert not unknown, (
                    f"{path.name} {rule.get('alert', rule.get('record'))}: {unknown} not in the contract"
                )
