"""Operator benchmark against a real kube-apiserver (etcd + apiserver + controller-manager).

1. 200 AsyncActors created at once: time until every actor has its ConfigMap, its
   Deployment and a status with observedGeneration and QueueReady (target: 60 s).
2. API writes by the operator (counted in the apiserver's audit log, by the operator's
   ServiceAccount): while creating, on timer ticks of unchanged actors, and on resume
   after an operator restart (target for the last two: 0).

Run: ``.venv/bin/python bench/operator_bench.py [--actors 200]``. Prints a table and
writes bench/results/operator.json. Needs the binaries from ci/build-kube.sh.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import importlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python" / "tests" / "operator"))

af = importlib.import_module("actorfactory")  # the operator tests' helpers and control plane
controlplane = importlib.import_module("controlplane")

NS = "asya-bench"
USER = "system:serviceaccount:asya-system:asya-operator"
TICK_S = 5.0  # status timer interval (default in production: 10 s)


def operator_writes(cp: controlplane.ControlPlane) -> list[dict[str, Any]]:
    time.sleep(2.5)  # audit batches flush within 1 s
    return [
        e
        for e in cp.audit_writes()
        if e.get("user", {}).get("username") == USER and (e.get("objectRef") or {}).get("namespace") == NS
    ]


def metadata_list(cp: controlplane.ControlPlane, path: str) -> list[dict[str, Any]]:
    """List objects as metadata only (the runtime ConfigMaps are large; the checker must stay cheap)."""
    req = urllib.request.Request(
        cp.server + path,
        headers={
            "Authorization": f"Bearer {controlplane.ADMIN_TOKEN}",
            "Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        },
    )
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(cp.ca)), timeout=30) as resp:
        return list(json.load(resp).get("items") or [])  # an empty list comes back as null


def cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return round(t.user + t.system, 1)


def summarize(events: list[dict[str, Any]]) -> dict[str, int]:
    c: collections.Counter[str] = collections.Counter()
    for e in events:
        ref = e["objectRef"]
        c[f"{e['verb']} {ref['resource']}{'/' + ref['subresource'] if ref.get('subresource') else ''}"] += 1
    return dict(sorted(c.items()))


def start_operator(cp: controlplane.ControlPlane, kubeconfig: Path, cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "ASYA_OPERATOR_CONFIG": str(cfg),
        "ASYA_OPERATOR_NAMESPACES": NS,
        "ASYA_OPERATOR_STATUS_INTERVAL_S": str(TICK_S),
        "ASYA_OPERATOR_QUEUE_CHECK_S": "60",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "asya.operator"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "operator.json")
    args = parser.parse_args()
    from kubernetes import client, config

    work = Path(tempfile.mkdtemp(prefix="asya-opbench-"))
    cp = controlplane.ControlPlane(work / "kube")
    (work / "kube").mkdir()
    results: dict[str, Any] = {"actors": args.actors}
    op = None
    try:
        cp.start()
        results["control_plane_start_s"] = round(cp.timings["total_s"], 2)
        cp.install_asya()
        kubeconfig = cp.service_account_kubeconfig("asya-system", "asya-operator", "asya-operator")
        cp.kubectl("create", "namespace", NS)
        cfg = work / "operator.yaml"
        cfg.write_text(yaml.safe_dump({"transports": {"local": {"type": "local", "url": str(work / "queues")}}}))
        log = work / "operator.log"
        op = start_operator(cp, kubeconfig, cfg, log)
        api = config.new_client_from_config(config_file=str(cp.admin_kubeconfig))
        time.sleep(3)  # operator start-up (watch established)

        names = [f"bench-{i:03d}" for i in range(args.actors)]
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: af.create(api, NS, af.actor_body(n)), names))
        results["create_requests_s"] = round(time.monotonic() - t0, 2)
        custom = client.CustomObjectsApi(api)
        deadline = t0 + 180
        done_at = None
        while time.monotonic() < deadline:
            actors = custom.list_namespaced_custom_object(af.GROUP, af.VERSION, NS, af.PLURAL)["items"]
            with_status = sum(
                1
                for a in actors
                if (a.get("status") or {}).get("observedGeneration") == 1
                and af.condition(a, "QueueReady").get("status") == "True"
            )
            deps = len(metadata_list(cp, f"/apis/apps/v1/namespaces/{NS}/deployments"))
            cms = sum(
                1
                for m in metadata_list(cp, f"/api/v1/namespaces/{NS}/configmaps")
                if m["metadata"]["name"].endswith("-asya-runtime")
            )
            if with_status == deps == cms == args.actors:
                done_at = time.monotonic()
                break
            time.sleep(0.25)
        results["all_children_and_status_s"] = round(done_at - t0, 2) if done_at else None
        results["target_60s_met"] = bool(done_at and done_at - t0 <= 60)

        create_writes = operator_writes(cp)
        results["writes_while_creating"] = summarize(create_writes)
        results["writes_per_actor_creating"] = round(len(create_writes) / args.actors, 2)
        # an actor is "unchanged" once kube-controller-manager has finished with its Deployment
        # (ReplicaSet and Pods created, Deployment status written); until then status changes are real
        apps = client.AppsV1Api(api)

        def kcm_done() -> bool:
            deps = apps.list_namespaced_deployment(NS).items
            return all((d.status.replicas or 0) == d.spec.replicas for d in deps)

        t_kcm = time.monotonic()
        while not kcm_done() and time.monotonic() - t_kcm < 120:
            time.sleep(1)
        results["controller_manager_settled_s"] = round(time.monotonic() - t0, 2)
        time.sleep(TICK_S * 2)  # let the ticks record what the controller-manager wrote
        settled = operator_writes(cp)
        time.sleep(TICK_S * 3)
        ticks = operator_writes(cp)[len(settled) :]
        results["timer_ticks_observed"] = 3
        results["writes_on_timer_ticks"] = summarize(ticks)
        results["cpu_s_operator"] = cpu_s(op.pid)
        results["cpu_s_apiserver"] = cpu_s(dict(cp.procs)["kube-apiserver"].pid)
        results["cpu_s_etcd"] = cpu_s(dict(cp.procs)["etcd"].pid)
        if "kube-controller-manager" in dict(cp.procs):
            results["cpu_s_controller_manager"] = cpu_s(dict(cp.procs)["kube-controller-manager"].pid)
        op.terminate()
        op.wait(30)
        before_resume = operator_writes(cp)
        t1 = time.monotonic()
        op = start_operator(cp, kubeconfig, cfg, log)
        time.sleep(3 * TICK_S)  # resume of 200 actors + several ticks
        resumed = operator_writes(cp)[len(before_resume) :]
        results["resume_window_s"] = round(time.monotonic() - t1, 1)
        results["writes_on_resume"] = summarize(resumed)
    finally:
        if op is not None and op.poll() is None:
            op.terminate()
            op.wait(30)
        cp.stop()
        if not os.environ.get("ASYA_KEEP_KUBE_DIR"):
            shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("actors created at once", results["actors"]),
        ("control plane start (s)", results.get("control_plane_start_s")),
        ("create requests sent (s)", results.get("create_requests_s")),
        (
            "all children + status (s), target <= 60",
            results.get("all_children_and_status_s"),
        ),
        (
            "operator writes per actor while creating",
            results.get("writes_per_actor_creating"),
        ),
        (
            "writes on 3 timer ticks (all actors), target 0",
            sum(results.get("writes_on_timer_ticks", {}).values()),
        ),
        (
            "writes on resume after restart, target 0",
            sum(results.get("writes_on_resume", {}).values()),
        ),
        ("CPU s until then: operator", results.get("cpu_s_operator")),
        ("CPU s until then: kube-apiserver", results.get("cpu_s_apiserver")),
        ("CPU s until then: etcd", results.get("cpu_s_etcd")),
        (
            "CPU s until then: kube-controller-manager",
            results.get("cpu_s_controller_manager"),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'operator benchmark':<{width}}  value")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print("writes while creating:", json.dumps(results.get("writes_while_creating")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0 if results.get("target_60s_met") else 1


if __name__ == "__main__":
    sys.exit(main())
