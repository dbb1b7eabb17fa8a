"""The operator runs as a ServiceAccount bound only by crds/rbac/operator.yaml.

Every other operator test proves the rules suffice (the operator works under them);
this module proves they are not wider than needed.
"""

from __future__ import annotations

from pathlib import Path

import controlplane
import pytest

pytestmark = [pytest.mark.kube, pytest.mark.timeout(60)]


def can_i(kube: controlplane.ControlPlane, kubeconfig: Path, *args: str) -> str:
    return kube.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False).strip()


def test_operator_identity_is_the_service_account(kube: controlplane.ControlPlane, operator_kubeconfig: Path) -> None:
    who = kube.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=operator_kubeconfig)
    assert who == "system:serviceaccount:asya-system:asya-operator"


@pytest.mark.parametrize(
    "verb",
    [
        ("patch", "asyncactors.asya.sh"),
        ("patch", "asyncactors.asya.sh", "--subresource=status"),
        ("create", "deployments.apps"),
        ("delete", "scaledobjects.keda.sh"),
        ("create", "events"),
    ],
)
def test_needed_verbs_are_allowed(
    kube: controlplane.ControlPlane, operator_kubeconfig: Path, verb: tuple[str, ...]
) -> None:
    assert can_i(kube, operator_kubeconfig, *verb, "-A") == "yes"


@pytest.mark.parametrize(
    "verb",
    [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("delete", "asyncactors.asya.sh"),
        ("delete", "namespaces"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ],
)
def test_unneeded_verbs_are_forbidden(
    kube: controlplane.ControlPlane, operator_kubeconfig: Path, verb: tuple[str, ...]
) -> None:
    assert can_i(kube, operator_kubeconfig, *verb, "-A") == "no"


def test_reading_a_secret_is_refused_by_the_api(kube: controlplane.ControlPlane, operator_kubeconfig: Path) -> None:
    out = kube.kubectl("get", "secrets", "-n", "default", kubeconfig=operator_kubeconfig, check=False)
    assert out == ""
    res = __import__("subprocess").run(
        [str(kube.bin / "kubectl"), f"--kubeconfig={operator_kubeconfig}", "get", "secrets", "-n", "default"],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "forbidden" in res.stderr
