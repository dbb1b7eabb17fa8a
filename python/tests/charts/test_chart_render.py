"""Rendered output: valid for Kubernetes 1.34 and every CRD, deterministic, values schema enforced."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmtools import CHARTS, Tools, chart_cases, chart_names, docs, values_cases

IDS = [f"{c}-{i}" for c, i, _ in chart_cases()]


@pytest.mark.kube
@pytest.mark.slow
@pytest.mark.timeout(600)  # the first one builds the schema cache (openapi2jsonschema) on a cold machine
@pytest.mark.parametrize(("chart", "case", "values"), chart_cases(), ids=IDS)
def test_kubeconform_strict(
    tools: Tools, offline_charts: Path, kube_schemas: Path, chart: str, case: str, values: list[Path]
) -> None:
    manifest = tools.template(offline_charts / chart, values)
    out = tools.run(
        "kubeconform", "-strict", "-summary", "-output", "text", "-schema-location", kube_schemas, "-",
        check=False, input_text=manifest,
    )  # fmt: skip
    # a kind without a schema is an error here too (no -ignore-missing-schemas)
    assert out.returncode == 0, f"kubeconform rejected {chart} ({case}):\n{out.stdout}\n{out.stderr}"
    assert "Invalid: 0, Errors: 0" in out.stdout, out.stdout


@pytest.mark.parametrize("chart", chart_names())
def test_some_values_case_renders_objects(tools: Tools, offline_charts: Path, chart: str) -> None:
    """A chart whose every case renders nothing would pass kubeconform vacuously."""
    counts = {case: len(docs(tools.template(offline_charts / chart, files))) for case, files in values_cases(chart)}
    assert any(counts.values()), f"{chart} renders no object in any case {counts}; add charts/{chart}/ci/*-values.yaml"


@pytest.mark.parametrize(("chart", "case", "values"), chart_cases(), ids=IDS)
def test_render_is_deterministic(tools: Tools, offline_charts: Path, chart: str, case: str, values: list[Path]) -> None:
    first = tools.template(offline_charts / chart, values)
    second = tools.template(offline_charts / chart, values)
    assert first == second, f"{chart} ({case}) renders differently twice (randAlphaNum, now, genCA, uuidv4?)"


def _first_key(values: dict[str, Any]) -> tuple[str, Any]:
    """The first top-level key with a non-null default, ``global`` aside (Helm merges it specially)."""
    for key, value in values.items():
        if key != "global" and value is not None:
            return key, value
    raise AssertionError("values.yaml has no top-level key with a default besides global")


def _wrong_value(value: Any) -> Any:
    """A JSON value of another type than ``value``."""
    if isinstance(value, bool | int | float):
        return ["not", "a", "scalar"]
    if isinstance(value, str):
        return 12345
    return "not-an-object-or-list"


@pytest.mark.parametrize("chart", chart_names())
def test_values_schema_rejects_wrong_type_and_unknown_key(tools: Tools, offline_charts: Path, chart: str) -> None:
    schema_file = CHARTS / chart / "values.schema.json"
    assert schema_file.exists(), f"charts/{chart}/values.schema.json is missing"
    schema = json.loads(schema_file.read_text())
    assert schema.get("additionalProperties") is False, f"{chart}: the schema root must set additionalProperties: false"
    values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text()) or {}
    tools.template(offline_charts / chart)  # the defaults pass

    key, default = _first_key(values)
    bad = tools.run(
        "helm", "template", "asya", offline_charts / chart, "--set-json", f"{key}={json.dumps(_wrong_value(default))}",
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0, f"{chart}: a wrong type for `{key}` rendered"
    assert key in bad.stderr and "schema" in bad.stderr, f"{chart}: the error does not name `{key}`:\n{bad.stderr}"

    invented = f"noSuchKey{uuid.uuid4().hex[:6]}"
    unknown = tools.run("helm", "template", "asya", offline_charts / chart, "--set", f"{invented}=1", check=False)
    assert unknown.returncode != 0, f"{chart}: an unknown top-level key `{invented}` rendered"
    assert invented in unknown.stderr, f"{chart}: the error does not name `{invented}`:\n{unknown.stderr}"
