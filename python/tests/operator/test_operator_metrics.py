"""The operator's /metrics (ASYA_OPERATOR_METRICS_PORT): reconciles by result and the actors it manages."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import actorfactory as af
import pytest
from actorfactory import wait_for
from support.procs import free_port

from asya.contracts import metrics as names

pytestmark = [pytest.mark.kube, pytest.mark.timeout(120)]


def sample(port: int, name: str, **labels: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return None


def test_operator_counts_reconciles_and_managed_actors(api: Any, kube: Any, start_operator: Callable[..., Any]) -> None:
    port = free_port()
    ns = af.new_namespace(kube, "asya-om")
    start_operator("asya-om-*", ASYA_OPERATOR_METRICS_PORT=str(port))
    af.create(api, ns, af.actor_body("counted", replicas=1))
    af.create(api, ns, af.actor_body("bad", transport="nosuch", replicas=1))
    wait_for(lambda: (sample(port, names.OPERATOR_RECONCILES, result="ok") or 0) >= 1, what="an ok reconcile")
    wait_for(lambda: (sample(port, names.OPERATOR_RECONCILES, result="rejected") or 0) >= 1, what="a rejected one")
    wait_for(lambda: sample(port, names.OPERATOR_MANAGED_ACTORS) == 2, what="two managed actors")
    af.delete(api, ns, "counted")
    af.delete(api, ns, "bad")
    wait_for(
        lambda: sample(port, names.OPERATOR_MANAGED_ACTORS) == 0,
        what="no managed actor after the deletes",
        timeout_s=30,
    )
