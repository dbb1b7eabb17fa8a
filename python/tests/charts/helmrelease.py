"""A Helm (v4, server-side apply) release in a Pod-Security-restricted namespace of the test apiserver."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import controlplane
from helmtools import Tools, by_subchart, docs
from kubestate import WORKLOAD_KINDS, cluster_objects_of, failed_creates, namespaced_objects, wait_until

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
        self.hook_jobs: dict[str, dict[str, str]] = {}
        self.hook_errors: list[str] = []

    def helm(self, *args: str | Path, timeout: float = 180) -> str:
        return self.tools.run(self.tools.helm4, *args, "--namespace", self.ns, timeout=timeout).stdout

    def helm_with_hooks(self, *args: str | Path, timeout: float = 180) -> str:
        """``helm`` for a command that runs hook Jobs (install, upgrade), standing in for the kubelet.

        Helm waits until each hook Job completes, and no kubelet runs here: this marks each
        hook Pod Succeeded once kube-controller-manager has created it (so Pod Security
        admission accepted it), and the real Job controller then completes the Job. The
        annotations of every hook Job seen are kept in ``hook_jobs``.
        """
        cmd = [self.tools.helm4, *map(str, args), "--namespace", self.ns]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                self._complete_hook_pods()
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            refusals = "\n  ".join(failed_creates(self.kube, self.ns)) or "(no FailedCreate event)"
            raise AssertionError(
                f"`helm {' '.join(map(str, args))}` exited {proc.returncode}\n--- stdout\n{out[-4000:]}\n"
                f"--- stderr\n{err[-4000:]}\nFailedCreate events:\n  {refusals}\n"
                f"hook pods that could not be marked Succeeded: {self.hook_errors[-3:]}"
            )
        return out

    def _complete_hook_pods(self) -> None:
        jobs = json.loads(self.kube.kubectl("get", "jobs", "-n", self.ns, "-o", "json"))["items"]
        hooks = {}
        for job in jobs:
            notes = job["metadata"].get("annotations") or {}
            if "helm.sh/hook" in notes:
                hooks[job["metadata"]["name"]] = notes
                self.hook_jobs[job["metadata"]["name"]] = notes
        if not hooks:
            return
        pods = json.loads(self.kube.kubectl("get", "pods", "-n", self.ns, "-o", "json"))["items"]
        for pod in pods:
            owner = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
            if owner in hooks and pod.get("status", {}).get("phase") in (None, "Pending"):
                done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": _now(), "finishedAt": _now()}}
                status = {
                    "phase": "Succeeded",
                    "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": done,
                        }
                        for c in pod["spec"]["containers"]
                    ],
                }
                try:
                    self.kube.kubectl(
                        "patch", "pod", pod["metadata"]["name"], "-n", self.ns, "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": status}),
                    )  # fmt: skip
                except RuntimeError as exc:  # reported if helm then fails; the next round retries
                    self.hook_errors.append(str(exc))

    def install(self, *values: Path) -> None:
        args: list[str | Path] = ["install", self.name, self.chart, "--server-side=true", "--timeout", "120s"]
        for f in values:
            args += ["-f", f]
        self.helm_with_hooks(*args)

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
        # the pre-delete hook Job (the operator chart's remove-actors) is completed like the install hooks;
        # what it does is proven on a real node (tests/cluster/test_cluster_zz_uninstall.py)
        with_operator = OPERATOR in self.subcharts()
        self.hook_jobs.clear()
        self.helm_with_hooks("uninstall", self.name, "--timeout", "120s")
        if with_operator:
            hooks = sorted(self.hook_jobs)
            assert any(h.endswith("-operator-uninstall") for h in hooks), (
                f"helm uninstall ran no uninstall hook: {hooks}"
            )

        def leftovers() -> list[str]:
            objs = namespaced_objects(self.kube, self.ns) + cluster_objects_of(self.kube, self.name)
            return [o for o in objs if not o.startswith("PersistentVolumeClaim/") and o not in kept | PER_NAMESPACE]

        wait_until(lambda: not leftovers() or None, 60, f"an empty namespace after uninstall; left: {leftovers()}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def operator_deployment(release: Release) -> dict[str, Any]:
    """The one Deployment the operator subchart rendered in ``release``."""
    manifest = release.helm("get", "manifest", release.name)
    found = [d for sub, d in by_subchart(manifest) if d["kind"] == "Deployment" and sub == OPERATOR]
    assert len(found) == 1, f"expected one operator Deployment, found {[d['metadata']['name'] for d in found]}"
    return found[0]
