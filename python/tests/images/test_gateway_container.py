"""The gateway image as the asya-gateway chart runs it: the migration Job, then the server, on real PostgreSQL.

The pod shapes come from ``helm template charts/asya-gateway`` (the Job's pod and the
Deployment's pod: args, env, volumes, security context); the test stands in for the
kubelet and resolves each ``secretKeyRef`` from the Secrets a user would create (the DSN,
the token Secret) and the broker's URL Secret (real RabbitMQ from ci/rabbitmq.sh).
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import controlplane
import podrun
import pytest
import yaml

sys.path.insert(0, str(podrun.ROOT / "python" / "tests" / "charts"))

from helmtools import Tools, tool_env

pytestmark = [pytest.mark.images, pytest.mark.rabbitmq]

CHART = podrun.ROOT / "charts" / "asya-gateway"
CLIENT_TOKEN = "img-client-" + "c" * 20
REPORT_TOKEN = "img-report-" + "r" * 20


def rendered(tag: str) -> dict[str, dict[str, Any]]:
    """The chart's objects by kind, with the image replaced by the locally built one."""
    registry, _, rest = tag.partition("/")
    repository, _, version = rest.partition(":")
    out = Tools(tool_env()).template(
        CHART, (), "--set", f"image.registry={registry}", "--set", f"image.repository={repository}",
        "--set", f"image.tag={version}", "--set", "image.pullPolicy=Never",
    )  # fmt: skip
    return {d["kind"]: d for d in yaml.safe_load_all(out) if d}


def secret_env(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """What a kubelet puts into the env for each ``secretKeyRef`` (a missing Secret fails, as it would there)."""
    env = {}
    for entry in container.get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            key = (ref["name"], ref["key"])
            assert key in secrets, f"{container['name']} reads Secret {key}, which the test does not provide"
            env[entry["name"]] = secrets[key]
    return env


def run_to_end(pod: podrun.Pod, name: str, image: str, env: dict[str, str]) -> tuple[int, str]:
    container = pod.start(name, image, env)
    podrun.wait_for(lambda: container.exit_code() is not None, 60, f"{name} to exit", pod.logs)
    code = container.exit_code()
    assert code is not None
    return code, container.logs()


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), None


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


def test_migration_job_then_server_answer_probes_and_check_tokens(
    images: dict[str, str], postgres_server: Any, rabbitmq_server: Any, pod_dir: Path, started: list[Any]
) -> None:
    objs = rendered(images["gateway"])
    dsn = postgres_server.fresh_database()
    secrets = {
        ("asya-postgresql", "url"): dsn,
        ("asya-rabbitmq", "url"): rabbitmq_server.url,
        ("asya-gateway-auth", "client-tokens"): CLIENT_TOKEN,
        ("asya-gateway-auth", "report-token"): REPORT_TOKEN,
    }
    # the chart's standalone default names the token Secret after the release
    secrets[("asya-asya-gateway-auth", "client-tokens")] = CLIENT_TOKEN
    secrets[("asya-asya-gateway-auth", "report-token")] = REPORT_TOKEN

    # 1. the hook Job's pod: `migrate` exits 0 and creates the schema; a second run finds nothing to do
    job_spec = objs["Job"]["spec"]["template"]["spec"]
    for attempt, expected in ((1, "applied migrations"), (2, "schema is current")):
        job = podrun.Pod(job_spec, pod_dir / f"job-{attempt}", {})
        started.append(job)
        code, logs = run_to_end(job, "migrate", images["gateway"], secret_env(job_spec["containers"][0], secrets))
        assert code == 0, logs
        assert expected in logs, logs
    assert {"jobs", "job_events", "schema_migrations"} <= asyncio.run(tables(dsn))

    # 2. the Deployment's pod: the init container migrates (idempotent), then the server serves
    spec = objs["Deployment"]["spec"]["template"]["spec"]
    pod = podrun.Pod(spec, pod_dir / "gateway", {})
    started.append(pod)
    init = spec["initContainers"][0]
    code, logs = run_to_end(pod, "migrate", images["gateway"], secret_env(init, secrets))
    assert code == 0 and "schema is current" in logs, logs
    port = controlplane.free_port()
    server = spec["containers"][0]
    env = {**secret_env(server, secrets), "ASYA_GATEWAY_PORT": str(port)}  # host network: a free port, not 8080
    pod.start("gateway", images["gateway"], env)
    base = f"http://127.0.0.1:{port}"
    for probe in ("healthz", "readyz"):  # the paths the chart's probes ask
        assert any(p["httpGet"]["path"] == f"/{probe}" for p in (server["livenessProbe"], server["readinessProbe"]))
        podrun.wait_for(lambda u=f"{base}/{probe}": podrun.answers(u), 60, probe, pod.logs)

    # 3. the tokens from the Secret are the ones it accepts, and only for their own endpoints
    assert get(f"{base}/jobs")[0] == 401
    assert get(f"{base}/jobs", REPORT_TOKEN)[0] == 401
    status, body = get(f"{base}/jobs", CLIENT_TOKEN)
    assert status == 200, pod.logs()
    assert body == {"jobs": [], "next_cursor": None}  # a fresh database, reached through the DSN Secret
    assert CLIENT_TOKEN not in pod.logs() and REPORT_TOKEN not in pod.logs()
