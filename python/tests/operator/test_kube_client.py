"""The operator's small REST client against the real apiserver: apply, get, delete, token rotation."""

from __future__ import annotations

import controlplane
import pytest

from asya.operator import kube as kubeclient

pytestmark = [pytest.mark.kube, pytest.mark.timeout(60)]


def configmap(name: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": value},
    }


async def test_apply_is_idempotent_and_delete_reports_absence(
    kube: controlplane.ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube.admin_kubeconfig))
    async with kube_client() as c:
        first = await c.apply(configmap("kc-test", "1"))
        again = await c.apply(configmap("kc-test", "1"))
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert (await c.get("ConfigMap", "default", "kc-test") or {})["data"] == {"k": "1"}
        assert await c.delete("ConfigMap", "default", "kc-test") is True
        assert await c.delete("ConfigMap", "default", "kc-test") is False
        assert await c.get("ConfigMap", "default", "kc-test") is None
        with pytest.raises(kubeclient.KubeError) as info:
            await c.apply({**configmap("Bad_Name", "1")})
        assert info.value.status == 422
        assert c.writes == 3


async def test_a_rotated_token_is_picked_up_on_401(
    kube: controlplane.ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kube.dir / "rotating.kubeconfig"
    kube._write_kubeconfig(path, "stale-token")
    monkeypatch.setenv("KUBECONFIG", str(path))
    async with kube_client() as c:
        kube._write_kubeconfig(path, controlplane.ADMIN_TOKEN)  # the token file was rotated
        assert await c.get("ConfigMap", "default", "absent") is None


def kube_client() -> kubeclient.KubeClient:
    return kubeclient.KubeClient(kubeclient.Credentials.load(), "asya-test")
