"""Issue 9 proof 2, second half: every actor workload the operator renders is admitted as "restricted".

The umbrella is installed with the example pipeline's actors (examples/01-text-pipeline/
helm-values.yaml under ``actors:``); then the operator runs from source (``python -m
asya.operator``) as the chart would run it: the configuration file is the ConfigMap the
release rendered, the env the plain values of the chart's operator container, the identity a
ServiceAccount bound to crds/rbac/operator.yaml, the watched namespace the install namespace.
Each AsyncActor (crew happy-end/error-end from the chart, the example's actors) must get a
workload whose Pods kube-controller-manager creates past Pod Security admission.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import controlplane
import pytest
import yaml
from helmrelease import Release, operator_deployment
from helmtools import ROOT
from kubestate import WORKLOAD_KINDS, get_json, wait_for_pods, wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLE = ROOT / "examples" / "01-text-pipeline" / "helm-values.yaml"
CREW = {"happy-end", "error-end"}


def _config_of(release: Release, deployment: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(operator.yaml text from the rendered ConfigMap, plain env of the operator container)."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    path = env.get("ASYA_OPERATOR_CONFIG", "/etc/asya/operator.yaml")
    mount = next(m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    key = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    for item in volume["configMap"].get("items", []):
        if item["path"] == key:
            key = item["key"]
    cm = get_json(release.kube, "configmap", volume["configMap"]["name"], "-n", release.ns)
    return cm["data"][key], env


@pytest.fixture
def operator_on(
    release: Release, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[Release, subprocess.Popen[bytes], Path]]:
    assert EXAMPLE.exists(), f"{EXAMPLE} (the example pipeline's actor values) is missing"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"actors": {"enabled": True, **yaml.safe_load(EXAMPLE.read_text())}}))
    release.install(values)
    text, env = _config_of(release, operator_deployment(release))
    config = tmp_path / "operator.yaml"
    config.write_text(text)
    # the operator's own broker connection: a closed port (queues are not under test here;
    # the operator still renders the workloads and reports the queue problem in status)
    dead = f"amqp://127.0.0.1:{controlplane.free_port()}/"
    for transport in (yaml.safe_load(text).get("transports") or {}).values():
        if transport.get("urlEnv"):
            env[transport["urlEnv"]] = dead
    log = tmp_path / "operator.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "asya.operator"],
        env={
            **os.environ,
            **env,
            "KUBECONFIG": str(operator_kubeconfig),
            "ASYA_OPERATOR_CONFIG": str(config),
            "ASYA_OPERATOR_NAMESPACES": release.ns,
            "POD_NAMESPACE": release.ns,
            "POD_NAME": "operator-from-source",
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield release, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _owned_workloads(release: Release) -> dict[str, dict[str, Any]]:
    """{actor name: its workload} for the workloads whose owner is an AsyncActor."""
    out = {}
    for kind in WORKLOAD_KINDS:
        for wl in get_json(release.kube, kind.lower(), "-n", release.ns)["items"]:
            for ref in wl["metadata"].get("ownerReferences", []):
                if ref["kind"] == "AsyncActor":
                    out[ref["name"]] = wl
    return out


def test_every_actor_workload_gets_pods_under_restricted(
    operator_on: tuple[Release, subprocess.Popen[bytes], Path],
) -> None:
    release, proc, log = operator_on
    actors = {a["metadata"]["name"] for a in get_json(release.kube, "asyncactors", "-n", release.ns)["items"]}
    example = {a["name"] for a in yaml.safe_load(EXAMPLE.read_text())["actors"]}
    assert actors >= CREW | example, f"the release declares {sorted(actors)}; expected crew {CREW} and {example}"

    def all_rendered() -> dict[str, dict[str, Any]] | None:
        assert proc.poll() is None, f"the operator exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        owned = _owned_workloads(release)
        return owned if set(owned) >= actors else None

    owned = wait_until(all_rendered, 120, f"a workload for each of {sorted(actors)}")
    for wl in owned.values():
        if wl["spec"].get("replicas", 1) == 0:
            # scaled to zero until messages arrive: one replica, as KEDA's HPA would, so
            # admission has a Pod to judge (the operator leaves replicas to the scaler)
            release.kube.kubectl("scale", f"{wl['kind'].lower()}/{wl['metadata']['name']}", "--replicas=1",
                                 "-n", release.ns)  # fmt: skip
    wait_for_pods(release.kube, release.ns, [(wl["kind"], wl["metadata"]["name"]) for wl in owned.values()])
