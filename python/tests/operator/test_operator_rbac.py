"""The operator runs as a ServiceAccount bound only by crds/rbac/operator.yaml.

``test_zz_rbac_matches_usage.py`` proves the ClusterRole equals what the operator calls.
This module checks the identity and the effective permissions (any other binding
included) for what must never be possible. The probes run as the admin impersonating the
ServiceAccount, so the audit log holds only requests the operator itself sent.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import controlplane
import pytest
import yaml
from actorfactory import OPERATOR_USER

pytestmark = [pytest.mark.kube, pytest.mark.timeout(60)]


def as_operator(kube: controlplane.ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(kube.bin / "kubectl"), f"--kubeconfig={kube.admin_kubeconfig}", f"--as={OPERATOR_USER}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_operator_identity_is_the_service_account(kube: controlplane.ControlPlane, operator_kubeconfig: Path) -> None:
    token = yaml.safe_load(operator_kubeconfig.read_text())["users"][0]["user"]["token"]
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    path = kube.dir / "token-review.yaml"
    path.write_text(yaml.safe_dump(review))
    out = kube.kubectl("create", "-f", str(path), "-o", "jsonpath={.status.user.username}")
    assert out == OPERATOR_USER


@pytest.mark.parametrize(
    "verb",
    [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("delete", "asyncactors.asya.sh"),
        ("delete", "deployments.apps"),
        ("delete", "configmaps"),
        ("delete", "namespaces"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ],
)
def test_unneeded_verbs_are_forbidden(kube: controlplane.ControlPlane, verb: tuple[str, ...]) -> None:
    assert as_operator(kube, "auth", "can-i", *verb, "-A").stdout.strip() == "no"


def test_reading_a_secret_is_refused_by_the_api(kube: controlplane.ControlPlane) -> None:
    res = as_operator(kube, "get", "secrets", "-n", "default")
    assert res.returncode != 0 and "forbidden" in res.stderr
    assert res.stdout == ""
