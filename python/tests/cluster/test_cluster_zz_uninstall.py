"""Last on the cluster: ``helm uninstall`` leaves no AsyncActor behind and the namespace can go.

Every AsyncActor carries the operator's finalizer. The actor releases are uninstalled while
the operator runs; then the umbrella release, whose own actors (happy-end, error-end) would
outlive the operator were it not for the chart's pre-delete hook. Runs after every other
cluster test (file name), since it takes the install down.
"""

from __future__ import annotations

import pytest
from conftest import Install, _helm_env, _run, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]


def test_uninstall_removes_every_actor_and_the_namespace_deletes(install: Install) -> None:
    cluster = install.cluster
    helm, env = _helm_env(cluster.kubeconfig)
    releases = {r.split("\t")[0].strip() for r in _run(helm, "list", "-n", install.ns, "-q", env=env).split()}
    assert "asya" in releases, releases
    for rel in sorted(releases - {"asya"}):  # the actor releases first, while the operator runs
        _run(helm, "uninstall", rel, "-n", install.ns, "--wait", "--timeout", "180s", env=env)
    crew = {a["metadata"]["name"] for a in cluster.json("-n", install.ns, "get", "asyncactors")["items"]}
    assert crew >= {"happy-end", "error-end"}, crew  # the umbrella's own actors are still there
    _run(helm, "uninstall", "asya", "-n", install.ns, "--wait", "--timeout", "300s", env=env)
    left = cluster.json("-n", install.ns, "get", "asyncactors")["items"]
    assert not left, [(a["metadata"]["name"], a["metadata"].get("finalizers")) for a in left]
    cluster.kubectl("delete", "namespace", install.ns, "--wait=false")

    def namespace_gone() -> bool:
        return install.ns not in {n["metadata"]["name"] for n in cluster.json("get", "namespaces")["items"]}

    wait_until(namespace_gone, 180, f"namespace {install.ns} deleted")
