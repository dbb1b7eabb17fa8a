"""Issue 9 proof 1 and 2: ``helm install asya charts/asya`` server-side into a real kube-apiserver.

Helm 4 (server-side apply) installs the offline copy of the umbrella into a namespace whose
Pod Security level "restricted" the apiserver enforces; kube-controller-manager then creates
the Pods of every Deployment and StatefulSet, so a non-compliant pod template is refused by
admission (a FailedCreate event, quoted in the failure). No kubelet or scheduler runs: the
Pods stay Pending, but they exist only if admission accepted them. The gateway's migration
hook Job is the one exception: Helm waits for it to complete, so the test marks its Pod
Succeeded (``Release.helm_with_hooks``) once admission has created it.
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

EVALUATION_CHARTS = {"rabbitmq", "s3", "postgresql"}  # subchart aliases in charts/asya/Chart.yaml
MIGRATION_JOB = "asya-gateway-migrate"
# (Helm hook, Argo CD hook): after the install while the release creates the database, before it otherwise
HOOKS = {"defaults": ("post-install,pre-upgrade", "Sync"), "external": ("pre-install,pre-upgrade", "PreSync")}
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
    assert "gateway" in names, f"the {scenario} install has no gateway: {sorted(names)}"
    assert ("Deployment", "asya-gateway") in workloads
    hook = release.hook_jobs.get(MIGRATION_JOB)
    assert hook, f"no migration hook Job ran during the {scenario} install (seen: {sorted(release.hook_jobs)})"
    helm_hook, argo_hook = HOOKS.get(scenario, HOOKS["defaults"])
    assert (hook.get("helm.sh/hook"), hook.get("argocd.argoproj.io/hook")) == (helm_hook, argo_hook), hook
    if scenario == "external":
        assert "postgresql" not in names, "global.externalDatabase still installs the evaluation PostgreSQL"
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
    release.hook_jobs.clear()
    release.helm_with_hooks("upgrade", release.name, release.chart, "--reuse-values", "--set", "operator.replicaCount=2",
                            "--server-side=true", "--timeout", "120s")  # fmt: skip
    assert MIGRATION_JOB in release.hook_jobs, "helm upgrade ran no migration Job (pre-upgrade hook)"
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
