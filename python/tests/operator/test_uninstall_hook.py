"""The chart's pre-delete hook (``python -m asya.operator remove-actors``) against a real apiserver.

Without it, ``helm uninstall`` would remove the operator and the release's actors together, and
the actors' finalizer (only a running operator removes it) would keep them, and their namespace,
forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import actorfactory as af
import controlplane
import pytest
from actorfactory import wait_for
from kubernetes import client

pytestmark = [pytest.mark.kube, pytest.mark.timeout(180)]

RELEASE = {"app.kubernetes.io/instance": "rel"}


def _names(api: Any, ns: str) -> set[str]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(af.GROUP, af.VERSION, ns, af.PLURAL)["items"]
    return {a["metadata"]["name"] for a in items}


def _hook(kubeconfig: Path, ns: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "asya.operator", "remove-actors", "--namespace", ns,
           "--selector", "app.kubernetes.io/instance=rel", "--timeout-s", str(timeout_s)]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s + 60, check=False)


def _actor(name: str, labels: dict[str, str]) -> dict[str, Any]:
    body = af.actor_body(name)
    body["metadata"]["labels"] = dict(labels)
    return body


def test_hook_deletes_only_the_releases_actors_and_waits_for_the_operator(
    api: Any, namespace: str, kube: controlplane.ControlPlane
) -> None:
    for name in ("one", "two"):
        af.create(api, namespace, _actor(name, RELEASE))
    af.create(api, namespace, _actor("other", {"app.kubernetes.io/instance": "someone-else"}))
    # the operator has put its finalizer on each: a plain delete alone would not be the end of them
    wait_for(lambda: all(af.get(api, namespace, n)["metadata"].get("finalizers") for n in ("one", "two", "other")),
             what="the operator's finalizers")  # fmt: skip
    res = _hook(kube.admin_kubeconfig, namespace, 60)
    assert res.returncode == 0, res.stderr
    assert _names(api, namespace) == {"other"}


def test_hook_without_an_operator_fails_naming_the_actor_and_the_way_out(
    api: Any, kube: controlplane.ControlPlane
) -> None:
    ns = af.new_namespace(kube, "asya-unwatched")  # no operator watches asya-unwatched-*
    body = _actor("orphan", RELEASE)
    body["metadata"]["finalizers"] = ["asya.sh/finalizer"]  # as the operator left it before it went
    af.create(api, ns, body)
    res = _hook(kube.admin_kubeconfig, ns, 3)
    assert res.returncode == 1
    assert "orphan: finalizers ['asya.sh/finalizer']" in res.stderr
    assert "patch asyncactor NAME" in res.stderr
    af.patch(api, ns, "orphan", {"metadata": {"finalizers": None}})
    wait_for(lambda: "orphan" not in _names(api, ns), what="orphan gone once the finalizer is dropped")
