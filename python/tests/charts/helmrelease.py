"""A Helm (v4, server-side apply) release in a Pod-Security-restricted namespace of the test apiserver."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import controlplane
from helmtools import Tools, by_subchart, docs
from kubestate import WORKLOAD_KINDS, cluster_objects_of, namespaced_objects, wait_until

KEEP = "helm.sh/resource-policy"
PER_NAMESPACE = {"ConfigMap/kube-root-ca.crt", "ServiceAccount/default"}  # Kubernetes' own, in every namespace
# not `asya`: the shared control plane already holds ClusterRole `asya-operator` (crds/rbac,
# applied for the operator tests), which a release `asya` would render too and Helm refuses to adopt
RELEASE = "asya-it"
OPERATOR = "operator"  # the operator subchart's alias in charts/asya/Chart.yaml


class Release:
    """One ``helm`` (v4) release in one restricted namespace of the test apiserver."""

    def __init__(
        self, tools: Tools, kube: controlplane.ControlPlane, chart: Path, ns: str, name: str = RELEASE
    ) -> None:
        self.env = {**tools.env, "KUBECONFIG": str(kube.admin_kubeconfig)}
        self.tools = Tools(self.env)
        self.kube, self.chart, self.ns, self.name = kube, chart, ns, name

    def helm(self, *args: str | Path, timeout: float = 180) -> str:
        return self.tools.run(self.tools.helm4, *args, "--namespace", self.ns, timeout=timeout).stdout

    def install(self, *values: Path) -> None:
        args: list[str | Path] = ["install", self.name, self.chart, "--server-side=true", "--timeout", "120s"]
        for f in values:
            args += ["-f", f]
        self.helm(*args)

    def manifest(self, revision: int | None = None) -> list[dict[str, Any]]:
        extra = ["--revision", str(revision)] if revision else []
        return docs(self.helm("get", "manifest", self.name, *extra))

    def subcharts(self) -> set[str]:
        """Aliases of the subcharts that rendered at least one object."""
        return {sub for sub, _ in by_subchart(self.helm("get", "manifest", self.name))}

    def workloads(self) -> list[tuple[str, str]]:
        return [(d["kind"], d["metadata"]["name"]) for d in self.manifest() if d["kind"] in WORKLOAD_KINDS]

    def assert_objects_exist(self) -> None:
        """Every object of the release manifest is stored in the apiserver (kubectl resolves the scopes)."""
        path = self.kube.dir / f"{self.ns}-manifest.yaml"
        path.write_text(self.helm("get", "manifest", self.name))
        res = subprocess.run(
            [str(self.kube.bin / "kubectl"), f"--kubeconfig={self.kube.admin_kubeconfig}", "get", "-f", str(path),
             "-n", self.ns, "-o", "name"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert res.returncode == 0, f"in the release manifest but not in the apiserver:\n{res.stderr}"
        assert len(res.stdout.split()) == len(self.manifest()), res.stdout

    def uninstall_leaves_nothing(self) -> None:
        kept = {
            f"{d['kind']}/{d['metadata']['name']}"
            for d in self.manifest()
            if (d["metadata"].get("annotations") or {}).get(KEEP) == "keep"
        }
        self.helm("uninstall", self.name, "--timeout", "120s")

        def leftovers() -> list[str]:
            objs = namespaced_objects(self.kube, self.ns) + cluster_objects_of(self.kube, self.name)
            return [o for o in objs if not o.startswith("PersistentVolumeClaim/") and o not in kept | PER_NAMESPACE]

        wait_until(lambda: not leftovers() or None, 60, f"an empty namespace after uninstall; left: {leftovers()}")


def operator_deployment(release: Release) -> dict[str, Any]:
    """The one Deployment the operator subchart rendered in ``release``."""
    manifest = release.helm("get", "manifest", release.name)
    found = [d for sub, d in by_subchart(manifest) if d["kind"] == "Deployment" and sub == OPERATOR]
    assert len(found) == 1, f"expected one operator Deployment, found {[d['metadata']['name'] for d in found]}"
    return found[0]
