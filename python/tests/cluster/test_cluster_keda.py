"""Issue 11 proof 3: KEDA scales an actor 0 -> N -> 0 under 200 envelopes; none lost, none processed twice."""

from __future__ import annotations

import datetime
import json
import threading
import time
from typing import Any

import pytest
from conftest import CLIENT_TOKEN, ROOT, Install, _helm_env, _run, job_final, wait_until

from asya.client.gateway import Client

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

N = 200
COOLDOWN_S = 20


@pytest.fixture(scope="module")
def keda(install: Install) -> float:
    """``ci/keda.sh install``: KEDA's operator and metrics apiserver in the cluster; seconds it took."""
    t0 = time.monotonic()
    _run(ROOT / "ci/keda.sh", "install", install.cluster.kubeconfig, timeout=3600)
    return time.monotonic() - t0


def _ts(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_keda_scales_0_to_n_to_0_and_every_envelope_is_processed_once(install: Install, keda: float) -> None:
    cluster = install.cluster
    helm, env = _helm_env(cluster.kubeconfig)
    values = {
        "actors": [
            {
                "name": "burst",
                "handler": "handlers.normalize",
                "scaling": {
                    "enabled": True,
                    "minReplicas": 0,
                    "maxReplicas": 4,
                    "queueLength": 10,
                    "pollingInterval": 2,
                    "cooldownPeriod": COOLDOWN_S,
                },
            }
        ]
    }
    vfile = cluster.kubeconfig.parent / "burst-values.json"
    vfile.write_text(json.dumps(values))
    charts = ROOT / "charts"
    _run(helm, "install", "burst", charts / "asya-actor", "-n", install.ns, "--server-side=true",
         "-f", ROOT / "examples/01-text-pipeline/helm-values.yaml", "-f", vfile, "--timeout", "120s", env=env)  # fmt: skip

    def scaled_object() -> Any:
        try:
            return cluster.json("-n", install.ns, "get", "scaledobject", "burst")
        except RuntimeError:  # NotFound until the operator wrote it
            return None

    try:
        wait_until(scaled_object, 90, "the ScaledObject burst")
    except AssertionError as exc:  # say why: the actor's conditions and what the operator logged
        actor = cluster.json("-n", install.ns, "get", "asyncactor", "burst").get("status")
        logs = cluster.kubectl("-n", install.ns, "logs", "-l", "app.kubernetes.io/component=operator", "--tail=80")
        (pod,) = cluster.pods(install.ns, "app.kubernetes.io/component=operator")
        restarts = [(c["name"], c.get("restartCount"), c.get("lastState")) for c in pod["status"]["containerStatuses"]]
        raise AssertionError(
            f"{exc}\nAsyncActor burst status: {actor}\noperator restarts: {restarts}\noperator log:\n{logs}"
        ) from exc

    def replicas() -> int:
        return int(cluster.json("-n", install.ns, "get", "deployment", "burst")["spec"].get("replicas") or 0)

    wait_until(lambda: replicas() == 0 or None, 120, "burst at 0 replicas before the load")
    peak = {"n": 0}
    stop = threading.Event()

    def watch_scale() -> None:
        while not stop.is_set():
            try:
                peak["n"] = max(peak["n"], replicas())
            except RuntimeError:
                pass
            time.sleep(1)

    watcher = threading.Thread(target=watch_scale, daemon=True)
    watcher.start()
    with Client(install.gateway_url, CLIENT_TOKEN, timeout_s=60) as client:
        published = time.time()
        jobs = [client.submit(["burst"], {"doc": f"b{i}", "text": f"Envelope number {i}."})["id"] for i in range(N)]
        first_ack: dict[str, float] = {}

        def first_step() -> None:
            for ev in client.watch(jobs[0]):
                if ev.data.get("actor") == "burst":
                    first_ack["t"] = time.time()
                    return

        threading.Thread(target=first_step, daemon=True).start()
        finals: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 600
        for job_id in jobs:
            finals[job_id] = job_final(client, job_id, deadline)
        drained = time.time()
        # every job's stream: exactly one burst step (a second one = the envelope was processed twice before
        # its job ended). The final event names the last actor too, so only progress events count.
        twice = {}
        for job_id in jobs:
            steps = [e.data for e in client.watch(job_id) if e.kind == "progress" and e.data.get("actor") == "burst"]
            if len(steps) != 1:
                twice[job_id] = len(steps)
    pods = cluster.pods(install.ns, "asya.sh/actor=burst")
    ready_times = sorted(
        _ts(c["lastTransitionTime"])
        for p in pods
        for c in p["status"].get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )
    back_to_zero = wait_until(lambda: replicas() == 0 and time.time(), COOLDOWN_S + 180, "burst back at 0 replicas")
    stop.set()
    bad = {j: f["status"] for j, f in finals.items() if f["status"] != "succeeded"}
    assert not bad, f"{len(bad)} of {N} jobs did not succeed: {dict(list(bad.items())[:5])}"
    assert not twice, f"burst steps per job other than 1: {dict(list(twice.items())[:5])}"
    assert peak["n"] >= 2, f"KEDA never scaled burst past {peak['n']} replica(s)"
    print(
        f"\nKEDA install {keda:.0f} s; cold start: published -> first pod Ready "
        f"{(ready_times[0] - published) if ready_times else float('nan'):.1f} s -> first ack "
        f"{first_ack.get('t', float('nan')) - published:.1f} s after publish; {N} drained in {drained - published:.1f} s; "
        f"peak {peak['n']} replicas; back at 0 {back_to_zero - drained:.0f} s after the drain"
    )
