"""Fixtures of the chart tests: the tools, an offline copy of the charts, kubeconform schemas.

The control plane is the session fixture ``kube`` (tests/fixtures/kube.py), the same one
the operator tests use; kubeconform's Kubernetes schemas come from its ``/openapi/v2``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemas
from helmrelease import Release
from helmtools import ROOT, UMBRELLA, Tools, chart_cases, docs, offline_copy, tool_env
from kubestate import restricted_namespace
from schemas import referencing_schema, write_extra_schemas

sys.path.insert(0, str(ROOT / "python" / "tests" / "operator"))

import controlplane


@pytest.fixture(scope="session")
def tools() -> Tools:
    """helm 3 (default ``helm``), helm 4, the unittest plugin, ct, kubeconform, helm-docs."""
    return Tools(tool_env())


@pytest.fixture(scope="session")
def offline_charts(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with remote dependencies removed and file:// ones built (no network)."""
    return offline_copy(tools, tmp_path_factory.mktemp("charts-offline"))


def _crd_files() -> list[Path]:
    """Every CRD the charts may render: AsyncActor, all of KEDA's, prometheus-operator's."""
    keda = controlplane.keda_crd_files()[0].parent
    return [ROOT / "crds/asyncactor.yaml", *sorted(keda.glob("*.yaml"))]


def _rendered_kinds(tools: Tools, charts: Path) -> set[tuple[str, str, str]]:
    """(group, version, kind) of every object any chart renders in any values case."""
    kinds = set()
    for chart, _case, values in chart_cases():
        try:
            rendered = docs(tools.template(charts / chart, values))
        except AssertionError:  # that case's own tests report it; the others still get schemas
            continue
        for d in rendered:
            group, _, version = d["apiVersion"].rpartition("/")
            kinds.add((group, version, d["kind"]))
    return kinds


def _core_swagger(swagger: dict[str, Any], kinds: set[tuple[str, str, str]]) -> dict[str, Any]:
    """The apiserver's swagger cut to the core definitions of ``kinds`` and what they refer to.

    openapi2jsonschema needs minutes for all ~600 definitions on 2 busy cores, seconds for these.
    CRD kinds are left out: their schemas come from the CRD files, which also cover CRDs the
    apiserver does not serve (e.g. ServiceMonitor).
    """
    defs = swagger["definitions"]
    roots = [
        key
        for key, d in defs.items()
        if key.startswith("io.k8s.")
        and any((g["group"], g["version"], g["kind"]) in kinds for g in d.get("x-kubernetes-group-version-kind", []))
    ]
    keep = referencing_schema(swagger, roots[0])["definitions"].keys() if roots else set()
    for root in roots[1:]:
        keep |= referencing_schema(swagger, root)["definitions"].keys()
    return {**swagger, "paths": {}, "definitions": {k: defs[k] for k in sorted(keep)}}


@pytest.fixture(scope="session")
def kube_schemas(kube: controlplane.ControlPlane, tools: Tools, offline_charts: Path) -> Path:
    """kubeconform schemas: the Kubernetes 1.34 kinds the charts render, from the test apiserver, plus every CRD.

    Cached in ~/.cache/asya-tools by the content of those definitions, the CRD files and the
    converter, so a warm run only fetches /openapi/v2 and renders the charts.
    """
    swagger = json.loads(kube._get("/openapi/v2"))
    core_swagger = _core_swagger(swagger, _rendered_kinds(tools, offline_charts))
    core = json.dumps(core_swagger, sort_keys=True).encode()
    prom = Path(tools.env["ASYA_PROM_CRDS"])
    crds = [*_crd_files(), *sorted(prom.glob("*.yaml"))]
    digest = hashlib.sha256(core)
    for f in crds:
        digest.update(f.read_bytes())
    digest.update(Path(schemas.__file__).read_bytes())  # a fix of the converter invalidates the cache
    cache = prom.parent / f"kubeconform-schemas-{digest.hexdigest()[:16]}"
    done = cache / ".complete"
    if not done.exists():
        work = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "swagger.json").write_bytes(core)
        tools.run(ROOT / "ci/chart-tools.sh", "schemas", work, work / "swagger.json", timeout=900)
        write_extra_schemas(work / "master-standalone-strict", swagger, crds)
        shutil.rmtree(cache, ignore_errors=True)
        work.rename(cache)
        done.touch()
    return cache


@pytest.fixture(scope="session")
def umbrella(offline_charts: Path) -> Path:
    """The umbrella chart of the offline copy; its absence fails the install proofs, never skips them."""
    chart = offline_charts / UMBRELLA
    assert (chart / "Chart.yaml").exists(), "charts/asya (the umbrella chart) is missing"
    return chart


@pytest.fixture
def release(tools: Tools, kube: controlplane.ControlPlane, umbrella: Path) -> Iterator[Release]:
    """An uninstalled release of the umbrella in a fresh restricted namespace; removed afterwards."""
    rel = Release(tools, kube, umbrella, restricted_namespace(kube, "asya-chart"))
    yield rel
    # a test that failed half-way must not leave its cluster-scoped objects to the next install
    rel.tools.run(rel.tools.helm4, "uninstall", rel.name, "--namespace", rel.ns, "--ignore-not-found", check=False)
    if not os.environ.get("ASYA_KEEP_KUBE_DIR"):
        kube.kubectl("delete", "namespace", rel.ns, "--wait=false", check=False)
