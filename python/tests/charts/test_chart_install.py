"""Issue 9 proof 1 and 2: ``helm install asya charts/asya`` server-side into a real kube-apiserver.

Helm 4 (server-side apply) installs the offline copy of the umbrella into a namespace whose
Pod Security level "restricted" the apiserver enforces; kube-controller-manager then creates
the Pods of every Deployment and StatefulSet, so a non-compliant pod template is refused by
admission (a FailedCreate event, quoted in the failure). No kubelet or scheduler runs: the
Pods stay Pending, but they exist only if admission accepted them.
"""

from __future__ import annotations

import pytest
from helmrelease import Release, operator_deployment
from helmtools import CI_VALUES
from kubestate import (
    get_json,
    wait_for_pods,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(300)]

EVALUATION_CHARTS = {"rabbitmq", "s3"}  # subchart aliases in charts/asya/Chart.yaml
SCENARIOS = {"defaults": None, "external": CI_VALUES / "external.yaml", "sqs-no-keda": CI_VALUES / "sqs-no-keda.yaml"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_install_restricted_every_workload_gets_pods(release: Release, scenario: str) -> None:
    values = SCENARIOS[scenario]
    if values is not None:
        assert values.exists(), f"{values} is missing"
    release.install(*([values] if values else []))
    release.assert_objects_exist()
    workloads = release.workloads()
    assert workloads, f"the {scenario} install renders no Deployment or StatefulSet"
    wait_for_pods(release.kube, release.ns, workloads)
    names = release.subcharts()
    if scenario == "defaults":
        assert names >= EVALUATION_CHARTS, f"the quick start lacks the evaluation subcharts: {sorted(names)}"
    elif scenario == "sqs-no-keda":  # the SQS transport turns the evaluation RabbitMQ off
        assert "rabbitmq" not in names, f"sqs-no-keda still installs the evaluation RabbitMQ: {sorted(names)}"
    else:
        assert not EVALUATION_CHARTS & names, (
            f"{scenario}: evaluation subcharts still installed: {EVALUATION_CHARTS & names}"
        )
    if scenario == "sqs-no-keda":
        keda = [d["kind"] for d in release.manifest() if d["apiVersion"].startswith("keda.sh/")]
        assert not keda, f"sqs-no-keda renders KEDA objects: {keda}"
    release.uninstall_leaves_nothing()


def test_upgrade_then_rollback(release: Release) -> None:
    release.install()
    before = operator_deployment(release)
    assert before["spec"].get("replicas", 1) == 1
    release.helm("upgrade", release.name, release.chart, "--reuse-values", "--set", "operator.replicaCount=2",
                 "--server-side=true", "--timeout", "120s")  # fmt: skip
    name = before["metadata"]["name"]
    up = get_json(release.kube, "deployment", name, "-n", release.ns)
    assert up["spec"]["replicas"] == 2, "helm upgrade did not reach the Deployment"
    pdbs = [d for d in release.manifest() if d["kind"] == "PodDisruptionBudget"]
    assert pdbs, "two operator replicas but no PodDisruptionBudget rendered"
    wait_for_pods(release.kube, release.ns, [("Deployment", name)])

    release.helm("rollback", release.name, "1", "--timeout", "120s")
    history = release.helm("history", release.name, "--output", "json")
    assert '"revision":3' in history.replace(" ", ""), history
    down = get_json(release.kube, "deployment", name, "-n", release.ns)
    assert down["spec"]["replicas"] == 1, "helm rollback did not restore one replica"
    assert not [d for d in release.manifest() if d["kind"] == "PodDisruptionBudget"]
    pdb_left = release.kube.kubectl("get", "pdb", "-n", release.ns, "-o", "name")
    assert not pdb_left.strip(), f"rollback left {pdb_left}"
    release.uninstall_leaves_nothing()
