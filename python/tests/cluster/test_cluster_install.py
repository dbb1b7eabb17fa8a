"""Issue 11 proofs 1, 2, 4 and 5: the umbrella chart and the example pipeline on a real node."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
from conftest import CLIENT_TOKEN, Install, job_final, ready, wait_until

from asya.client.gateway import Client

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

ROUTE = ["normalize", "chunk", "classify"]
TEXT = (
    "The football match ended with a late goal and the fans sang for an hour. "
    "The new laptop ships with a faster chip and more memory for developers who compile all day."
)


def test_every_pod_ready_under_restricted(install: Install) -> None:
    """Proof 1: every pod of the install (operator, gateway, crew, the three actors) Ready in a restricted namespace."""
    ns = install.cluster.json("get", "namespace", install.ns)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = install.cluster.pods(install.ns)
    running = [p for p in pods if p["status"].get("phase") != "Succeeded"]  # the migration hook Job's pod
    names = sorted(p["metadata"]["name"].rsplit("-", 2)[0] for p in running)
    for want in ("asya-gateway", "asya-operator", "happy-end", "error-end", "normalize", "chunk", "classify"):
        assert want in names, f"no {want} pod among {names}"
    not_ready = [p["metadata"]["name"] for p in running if not ready(p)]
    assert not not_ready, f"pods not Ready: {not_ready}"
    restarts = {
        p["metadata"]["name"]: sum(c["restartCount"] for c in p["status"]["containerStatuses"]) for p in running
    }
    assert not any(restarts.values()), f"containers restarted: {restarts}"


def test_operator_runs_as_its_service_account_and_nothing_is_forbidden(install: Install) -> None:
    """Proof 5: the operator pod uses its own ServiceAccount token and the API never refused it."""
    (pod,) = install.cluster.pods(install.ns, "app.kubernetes.io/component=operator")
    sa = pod["spec"]["serviceAccountName"]
    assert sa != "default" and pod["spec"].get("automountServiceAccountToken", True) is not False
    who = install.cluster.kubectl("auth", "whoami", "--as", f"system:serviceaccount:{install.ns}:{sa}", "-o", "json")
    assert json.loads(who)["status"]["userInfo"]["username"] == f"system:serviceaccount:{install.ns}:{sa}"
    logs = install.cluster.kubectl("-n", install.ns, "logs", pod["metadata"]["name"])
    assert "forbidden" not in logs.lower(), [line for line in logs.splitlines() if "orbidden" in line][:5]
    # it did its job with those rights: every actor it reconciled has its workload and queue
    for actor in install.cluster.json("-n", install.ns, "get", "asyncactors")["items"]:
        conds = {c["type"]: c["status"] for c in actor["status"]["conditions"]}
        assert conds.get("QueueReady") == "True" and conds.get("WorkloadReady") == "True", (
            actor["metadata"]["name"],
            conds,
        )


def _results(install: Install, job_id: str) -> list[str]:
    s3 = boto3.client(
        "s3", endpoint_url=install.s3.url, aws_access_key_id=install.s3.access_key_id,
        aws_secret_access_key=install.s3.secret_access_key, region_name=install.s3.region,
    )  # fmt: skip
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=install.bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", []) if job_id in o["Key"]]


def test_job_flows_through_actor_pods_to_happy_end(install: Install) -> None:
    """Proof 2: a job from the gateway crosses the three actor pods; the SSE stream shows each step; results in S3."""
    with Client(install.gateway_url, CLIENT_TOKEN) as client:
        job = client.submit(ROUTE, {"doc": "d1", "text": TEXT})
        events = [e.data for e in client.watch(job["id"])]
        final = client.get(job["id"])
        assert final["status"] == "succeeded", final
        steps = [e.get("actor") for e in events if e.get("actor")]
        assert steps[:2] == ["normalize", "chunk"], events
        children = final["result"]["children"]
        assert children["total"] >= 2 and children["succeeded"] == children["total"], children
        child_ids = next(e["outputs"] for e in events if e.get("actor") == "chunk")
        for child in child_ids:
            child_events = [e.data for e in client.watch(child)]
            assert "classify" in [e.get("actor") for e in child_events], child_events
            assert client.get(child)["status"] == "succeeded"
    keys = wait_until(lambda: _results(install, job["id"]), 30, f"a result of job {job['id']} in S3")
    assert keys, keys


def test_deleting_an_actor_pod_mid_processing_loses_nothing(install: Install) -> None:
    """Proof 4: 40 jobs in flight, one classify pod deleted (SIGTERM, the operator's grace period): all succeed."""
    cluster = install.cluster
    with Client(install.gateway_url, CLIENT_TOKEN, timeout_s=60) as client:
        jobs = [client.submit(ROUTE, {"doc": f"d{i}", "text": TEXT * 3})["id"] for i in range(40)]
        victim = next(p for p in cluster.pods(install.ns, "asya.sh/actor=classify") if ready(p))
        grace = victim["spec"]["terminationGracePeriodSeconds"]
        done: dict[str, Any] = {}

        def delete() -> None:
            done["out"] = cluster.kubectl(
                "-n", install.ns, "delete", "pod", victim["metadata"]["name"], timeout=grace + 60
            )

        deleter = threading.Thread(target=delete)
        deleter.start()
        deadline = time.monotonic() + 300
        finals = {}
        for job_id in jobs:
            finals[job_id] = job_final(client, job_id, deadline)
        deleter.join(timeout=grace + 60)
    assert "deleted" in done.get("out", ""), done
    bad = {j: f["status"] for j, f in finals.items() if f["status"] != "succeeded"}
    assert not bad, f"jobs not succeeded after the pod delete: {bad}"
    for job_id, final in finals.items():
        c = final["result"]["children"]
        assert c["succeeded"] == c["total"] >= 2, (job_id, c)
