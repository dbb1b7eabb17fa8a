"""Operator benchmark against a real kube-apiserver (etcd + apiserver + controller-manager).

1. 200 AsyncActors created at once: time until every actor has its ConfigMap, its
   Deployment and a status with observedGeneration and QueueReady (target: 60 s).
2. API writes by the operator (counted in the apiserver's audit log, by the operator's
   ServiceAccount): while creating, on timer ticks of unchanged actors, and on resume
   after an operator restart (target for the last two: 0).
3. Every API request of the operator while creating (reads and watches too, by verb and
   resource) and its CPU seconds when the last actor is done: unlike the wall time, neither
   moves when other work shares the machine, so they are what an A/B compares.

``--profile DIR`` samples the operator with py-spy from start until the last actor is done
(raw stacks, ``DIR/operator-create.txt``; fold them with any flamegraph tool).

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
TICK_S = 5.0  # status timer interval (default in production: 10 s); --status-interval


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


def cpu_s(pid: int, digits: int = 1) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return round(t.user + t.system, digits)


def cpu_all(cp: controlplane.ControlPlane, op: subprocess.Popen[bytes]) -> dict[str, float]:
    """CPU seconds so far of the operator and of every control-plane process."""
    return {"operator": cpu_s(op.pid, 2), **{name: cpu_s(p.pid, 2) for name, p in cp.procs}}


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def object_bytes(cp: controlplane.ControlPlane, path: str) -> int:
    """Size of one stored object as JSON (what every GET, watch event and list item carries)."""
    req = urllib.request.Request(cp.server + path, headers={"Authorization": f"Bearer {controlplane.ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(cp.ca)), timeout=30) as resp:
        return len(resp.read())


def operator_requests(cp: controlplane.ControlPlane) -> list[dict[str, Any]]:
    """Every request of the operator's ServiceAccount so far, once each (reads and watches too).

    A watch is logged when its response starts (it completes only when closed), every
    other request when it completes.
    """
    time.sleep(2.5)  # audit batches flush within 1 s
    out = []
    for e in cp.audit_events():
        if e.get("user", {}).get("username") != USER:
            continue
        watch = e.get("verb") == "watch"
        if e.get("stage") == ("ResponseStarted" if watch else "ResponseComplete"):
            out.append(e)
    return out


def summarize(events: list[dict[str, Any]]) -> dict[str, int]:
    c: collections.Counter[str] = collections.Counter()
    for e in events:
        ref = e.get("objectRef") or {}
        sub = "/" + ref["subresource"] if ref.get("subresource") else ""
        c[f"{e['verb']} {ref.get('resource', e.get('requestURI', '?'))}{sub}"] += 1
    return dict(sorted(c.items()))


def start_operator(
    cp: controlplane.ControlPlane, kubeconfig: Path, cfg: Path, log: Path, tick_s: float, cprofile: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "ASYA_OPERATOR_CONFIG": str(cfg),
        "ASYA_OPERATOR_NAMESPACES": NS,
        "ASYA_OPERATOR_STATUS_INTERVAL_S": str(tick_s),
        "ASYA_OPERATOR_QUEUE_CHECK_S": "60",
    }
    # cProfile writes its file when the operator exits (SIGTERM is a clean exit for kopf)
    profiling = ["-m", "cProfile", "-o", str(cprofile)] if cprofile else []
    return subprocess.Popen(
        [sys.executable, *profiling, "-m", "asya.operator"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "operator.json")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the operator into this folder")
    parser.add_argument("--status-interval", type=float, default=TICK_S, help="the operator's status timer (s)")
    parser.add_argument("--create-only", action="store_true", help="stop once every actor is done")
    parser.add_argument("--cprofile", type=Path, default=None, help="run the first operator under cProfile")
    args = parser.parse_args()
    tick_s = args.status_interval
    from kubernetes import client, config

    work = Path(tempfile.mkdtemp(prefix="asya-opbench-"))
    # the operator's reads and watches are logged too (RequestReceived omitted; see controlplane)
    cp = controlplane.ControlPlane(work / "kube", audited_users=(USER,))
    (work / "kube").mkdir()
    results: dict[str, Any] = {"actors": args.actors}
    op = None
    spy = None
    try:
        cp.start()
        results["control_plane_start_s"] = round(cp.timings["total_s"], 2)
        cp.install_asya()
        kubeconfig = cp.service_account_kubeconfig("asya-system", "asya-operator", "asya-operator")
        cp.kubectl("create", "namespace", NS)
        cfg = work / "operator.yaml"
        cfg.write_text(yaml.safe_dump({"transports": {"local": {"type": "local", "url": str(work / "queues")}}}))
        log = work / "operator.log"
        op = start_operator(cp, kubeconfig, cfg, log, tick_s, args.cprofile)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(op.pid), "--format", "raw",
                 "--rate", "100", "-o", str(args.profile / "operator-create.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        api = config.new_client_from_config(config_file=str(cp.admin_kubeconfig))
        time.sleep(3)  # operator start-up (watch established)

        names = [f"bench-{i:03d}" for i in range(args.actors)]
        cpu_t0 = cpu_all(cp, op)
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
                results["cpu_s_operator_at_done"] = cpu_s(op.pid, 2)
                results["cpu_s_creating"] = cpu_between(cpu_t0, cpu_all(cp, op))
                break
            time.sleep(0.25)
        results["all_children_and_status_s"] = round(done_at - t0, 2) if done_at else None
        results["target_60s_met"] = bool(done_at and done_at - t0 <= 60)
        if spy is not None:
            spy.send_signal(2)  # py-spy writes its file on SIGINT
            spy.wait(60)
            spy = None
        creating = operator_requests(cp)
        results["requests_while_creating"] = summarize(creating)
        results["requests_per_actor_creating"] = round(len(creating) / args.actors, 2)
        results["object_bytes"] = {
            "asyncactor": object_bytes(cp, f"/apis/{af.GROUP}/{af.VERSION}/namespaces/{NS}/{af.PLURAL}/bench-000"),
            "configmap": object_bytes(cp, f"/api/v1/namespaces/{NS}/configmaps/bench-000-asya-runtime"),
            "deployment": object_bytes(cp, f"/apis/apps/v1/namespaces/{NS}/deployments/bench-000"),
        }
        if args.create_only:
            return _report(args, results)

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
        time.sleep(tick_s * 2)  # let the ticks record what the controller-manager wrote
        settled = operator_writes(cp)
        cpu_ticks = cpu_all(cp, op)
        time.sleep(tick_s * 3)
        results["cpu_s_3_ticks"] = cpu_between(cpu_ticks, cpu_all(cp, op))
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
        op = start_operator(cp, kubeconfig, cfg, log, tick_s)
        time.sleep(3 * tick_s)  # resume of 200 actors + several ticks
        resumed = operator_writes(cp)[len(before_resume) :]
        results["resume_window_s"] = round(time.monotonic() - t1, 1)
        results["writes_on_resume"] = summarize(resumed)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        if op is not None and op.poll() is None:
            op.terminate()
            op.wait(30)
        cp.stop()
        if not os.environ.get("ASYA_KEEP_KUBE_DIR"):
            shutil.rmtree(work, ignore_errors=True)
    return _report(args, results)


def _report(args: argparse.Namespace, results: dict[str, Any]) -> int:
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
            "operator requests per actor until done (reads too)",
            results.get("requests_per_actor_creating"),
        ),
        ("CPU s of the operator when the last actor is done", results.get("cpu_s_operator_at_done")),
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
    print("requests until done:", json.dumps(results.get("requests_while_creating")))
    print("CPU s from the first create until done:", json.dumps(results.get("cpu_s_creating")))
    print("CPU s over 3 timer ticks:", json.dumps(results.get("cpu_s_3_ticks")))
    print("bytes of one stored object:", json.dumps(results.get("object_bytes")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0 if results.get("target_60s_met") else 1


if __name__ == "__main__":
    sys.exit(main())
