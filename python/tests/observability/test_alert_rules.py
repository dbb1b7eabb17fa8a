"""The alert rules in dashboards/rules pass ``promtool check rules`` and their ``promtool test rules``
unit tests, and every alert is tested both ways: a case where it fires and one where it must not."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from asya.contracts import metrics as contract

RULES_DIR = Path(__file__).resolve().parents[3] / "dashboards" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: ci/apt-packages.txt installs Debian's prometheus, which ships it")
    return found


def alerts() -> dict[str, dict[str, object]]:
    out = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule
    return out


def cases() -> dict[str, collections.Counter[str]]:
    """alert -> how many test cases expect it to fire / to stay silent."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                counts[case["alertname"]]["fires" if case.get("exp_alerts") else "silent"] += 1
    return counts


def test_rule_files_are_valid() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    done = subprocess.run([promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    assert TEST_FILES
    done = subprocess.run(
        [promtool(), "test", "rules", *map(str, TEST_FILES)], capture_output=True, text=True, cwd=RULES_DIR / "tests"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    counts = cases()
    for name in alerts():
        assert counts[name]["fires"] >= 1, f"{name}: no promtool case where it fires"
        assert counts[name]["silent"] >= 1, f"{name}: no promtool case where it must not fire"


def test_every_alert_says_what_to_do_and_uses_known_metrics() -> None:
    known = contract.known_series()
    for name, rule in alerts().items():
        annotations = rule.get("annotations") or {}
        assert isinstance(annotations, dict)
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key), f"{name}: no {key} annotation"
        assert (rule.get("labels") or {}).get("severity") in ("warning", "critical"), name
        used = set(re_metric_names(str(rule["expr"])))
        unknown = used - known
        assert not unknown, f"{name} uses metrics that are not in the contract table: {unknown}"


def re_metric_names(expr: str) -> list[str]:
    return re.findall(r"\b((?:asya|rabbitmq|kube)_[a-z0-9_]+)\b", expr)


def test_per_alert_case_counts(record_property: pytest.RecordProperty) -> None:
    """Not a check: the closing note quotes these counts (pytest -rA shows them)."""
    counts = cases()
    for name in alerts():
        record_property(name, dict(counts[name]))
    assert set(counts) <= set(alerts()), f"tests name alerts that do not exist: {set(counts) - set(alerts())}"
