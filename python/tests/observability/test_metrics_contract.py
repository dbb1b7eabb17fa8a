"""The metrics table (asya.contracts.metrics) is the truth: docs, collectors and crew counters agree with it.

Each component's registry is built the way the component builds it, and every family it
registers must be in the table with the same type and labels; every table entry must be
registered by some component (or counted by crew code, checked from its source).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from asya.contracts import metrics as contract
from asya.engine.cancellation import CancellationWatch
from asya.engine.metrics import Metrics
from asya.engine.reporting import Reporter
from asya.gateway.metrics import GatewayMetrics
from asya.operator.metrics import OperatorMetrics
from asya.sidecar.observability import SidecarMetrics

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "python" / "src" / "asya"


def families(registry: CollectorRegistry) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, labels) of every collector in ``registry`` (counter names with ``_total``).

    Read from the collectors themselves: a labelled family shows no sample until a child exists.
    """
    out = {}
    for collector in set(registry._collector_to_names):
        kind = collector._type  # type: ignore[attr-defined]
        name = collector._name + ("_total" if kind == "counter" else "")  # type: ignore[attr-defined]
        out[name] = (kind, tuple(sorted(collector._labelnames)))  # type: ignore[attr-defined]
    return out


def registered() -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    metrics = Metrics("a")
    SidecarMetrics(metrics)
    CancellationWatch("http://127.0.0.1:9", metrics=metrics)
    Reporter("http://127.0.0.1:9", metrics=metrics)
    return {
        "consumer": families(metrics.registry),
        "gateway": families(GatewayMetrics().registry),
        "operator": families(OperatorMetrics(10.0).registry),
    }


def crew_counters() -> dict[str, tuple[str, ...]]:
    """Counters crew code creates on first use (``metrics.inc(names.X, label=...)``), from the source."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted((SRC / "crew").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "inc"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
                and isinstance(node.args[0].value, ast.Name)
                and node.args[0].value.id == "names"
            ):
                name = getattr(contract, node.args[0].attr)
                found[name] = tuple(sorted(k.arg for k in node.keywords if k.arg))
    return found


def test_docs_metrics_md_is_generated_from_the_table() -> None:
    doc = ROOT / "docs" / "metrics.md"
    assert doc.read_text() == contract.markdown(), (
        "docs/metrics.md is stale: run `python -m asya.contracts.metrics > docs/metrics.md`"
    )


@pytest.mark.parametrize("component", ["consumer", "gateway", "operator"])
def test_every_registered_collector_is_in_the_table_with_its_type_and_labels(component: str) -> None:
    for name, (kind, labels) in registered()[component].items():
        assert name in contract.BY_NAME, f"{component} registers {name}, which is not in the metrics table"
        entry = contract.BY_NAME[name]
        assert entry.kind == kind, f"{name}: registered as {kind}, the table says {entry.kind}"
        assert tuple(sorted(entry.labels)) == labels, f"{name}: labels {labels}, the table says {entry.labels}"


def test_crew_counters_match_the_table() -> None:
    counters = crew_counters()
    assert counters, "no crew counters found: the source scan is broken"
    for name, labels in counters.items():
        entry = contract.BY_NAME[name]
        assert entry.kind == "counter" and tuple(sorted(entry.labels)) == labels, (name, labels, entry)


def test_every_table_entry_is_exported_by_some_component() -> None:
    exported = {name for fams in registered().values() for name in fams} | set(crew_counters())
    missing = [m.name for m in contract.TABLE if m.name not in exported]
    assert not missing, f"in the table but exported by no component: {missing}"


def test_no_label_can_hold_an_id() -> None:
    for m in contract.TABLE:
        for label in m.labels:
            assert "id" not in label.split("_") and label not in ("job", "envelope", "trace"), (m.name, label)
