"""The proof: every panel query of both dashboards returns data from a real Prometheus scraping a real pipeline.

RabbitMQ (with its own rabbitmq_prometheus plugin), two actors behind real sidecars and
runtimes, the crew's happy-end and error-end, and the gateway on PostgreSQL. Jobs succeed,
fail into retries and dead letters; Prometheus scrapes every component each second. Then each
panel's queries, with the variables filled in the way Grafana would, go to /api/v1/query and
must return at least one finite sample. Only the panels' kube-state-metrics queries are exempt
(``EXEMPT``): no cluster runs here, so nothing exports kube_* series.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dashboard_model import dashboards, fill, panels
from fixtures.postgres import PostgresServer
from promlive import Prometheus, finite_values, plugin_broker, wait_for
from support.procs import Proc, base_env, free_port, start_runtime, start_sidecar

from asya.gateway.migrations import migrate
from asya.transports import TransportSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from gateway_helpers import REPORT_TOKEN, running_gateway, settings

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]
__all__ = ["plugin_broker"]  # the module fixture, used by name below

# (dashboard file, panel title, refId) -> why the query cannot return data here
EXEMPT = {
    ("asya-overview.json", "Replicas against queue depth", "B"): "kube_deployment_status_replicas: kube-state-metrics "
    "exports it from a cluster's API; no cluster (and no kube-state-metrics) runs in this test",
}
RATE_INTERVAL = "30s"
FLAKY = "observability.obs_handlers.flaky"
DOCS_SCRIPT = Path(__file__).resolve().parents[3] / "ci" / "observability-docs.py"


def start_processes(amqp: str, gateway_url: str, tmp: Path, actors: dict[str, str]) -> tuple[list[Proc], list[str]]:
    """Runtimes + sidecars for ``actors`` and the two crew processes; their metrics targets (host:port)."""
    logs = tmp / "logs"
    logs.mkdir()
    transport = {"ASYA_TRANSPORT": "rabbitmq", "ASYA_TRANSPORT_URL": amqp}
    report = {"ASYA_GATEWAY_URL": gateway_url, "ASYA_GATEWAY_TOKEN": REPORT_TOKEN}
    procs: list[Proc] = []
    targets: list[str] = []
    for actor, handler in actors.items():
        sock = tmp / f"sock-{actor}"
        sock.mkdir()
        port = free_port()
        procs.append(start_runtime(handler, sock, logs, ASYA_ACTOR=actor))
        procs.append(start_sidecar(actor, sock, logs, transport, ASYA_HTTP_PORT=port, **report))
        targets.append(f"127.0.0.1:{port}")
    crew = {
        **transport,
        **report,
        "ASYA_STORAGE_URL": (tmp / "store").as_uri(),
        "ASYA_RETRY_MAX_ATTEMPTS": "2",
        "ASYA_RETRY_BACKOFF_BASE_S": "0.05",
        "ASYA_RETRY_BACKOFF_MAX_S": "0.2",
        "ASYA_HTTP_HOST": "127.0.0.1",
    }
    for end in ("happy-end", "error-end"):
        port = free_port()
        env = base_env(**crew, ASYA_HTTP_PORT=port)
        procs.append(Proc([sys.executable, "-m", "asya.crew", end], env, logs / f"{end}.log"))
        targets.append(f"127.0.0.1:{port}")
    return procs, targets


def logs_text(procs: list[Proc]) -> str:
    return "\n".join(f"--- {p.log_path.name}\n{p.log()[-1500:]}" for p in procs)


def panel_queries(actor: str) -> list[tuple[tuple[str, str, str], str]]:
    out = []
    for name, model in dashboards().items():
        for p in panels(model):
            for t in p["targets"]:
                out.append(((name, p["title"], t["refId"]), fill(t["expr"], actor, RATE_INTERVAL)))
    return out


def test_exempt_queries_are_external_metrics_only() -> None:
    queries = dict(panel_queries("a"))
    for key in EXEMPT:
        assert key in queries, f"exempt {key} is no longer a panel query"
        assert "kube_" in queries[key] and "asya_" not in queries[key] and "rabbitmq_" not in queries[key], key


async def test_every_panel_query_returns_data_from_a_real_prometheus(
    plugin_broker: dict[str, str], postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = await asyncio.to_thread(postgres_server.fresh_database)
    await migrate(dsn)
    transport = TransportSettings(kind="rabbitmq", url=plugin_broker["AMQP_URL"])
    suffix = uuid.uuid4().hex[:6]
    score, store = f"score-{suffix}", f"store-{suffix}"
    prom = Prometheus(tmp_path / "prometheus")
    procs: list[Proc] = []
    async with running_gateway(settings(dsn, transport)) as gw:
        try:
            procs, targets = await asyncio.to_thread(
                start_processes,
                plugin_broker["AMQP_URL"],
                gw.url,
                tmp_path,
                {score: FLAKY, store: "support.handlers.add_one"},
            )
            rabbit = plugin_broker["PROMETHEUS_URL"].removeprefix("http://").rstrip("/")
            jobs = {
                "asya-consumers": ("/metrics", targets),
                "asya-gateway": ("/metrics", [gw.url.removeprefix("http://")]),
                "rabbitmq": ("/metrics/per-object", [rabbit]),
            }
            await asyncio.to_thread(prom.start, jobs)
            started = time.time()
            await asyncio.to_thread(
                wait_for,
                lambda: set(prom.targets_up().values()) == {"up"} and len(prom.targets_up()) == len(targets) + 2,
                "every target scraped and up",
                60,
            )
            finished = 1  # the crash job
            # A runtime crash, restarted the way the kubelet would: the restarts panel shows a real restart.
            runtime, sock = procs[0], tmp_path / f"sock-{score}"
            crash = await submit_one(gw, [score, store], {"n": 0, "die_marker": str(tmp_path / "died")})
            await asyncio.to_thread(wait_for, lambda: not runtime.alive(), f"runtime of {score} to die", 30)
            logs = tmp_path / "logs"
            procs.append(await asyncio.to_thread(start_runtime, FLAKY, sock, logs, ASYA_ACTOR=score))
            await wait_final(gw, [crash], procs)

            def restarted() -> bool:
                return bool(finite_values(prom.query(f'asya_sidecar_runtime_restarts_total{{actor="{score}"}} >= 1')))

            await asyncio.to_thread(wait_for, restarted, f"Prometheus sees the restart of {score}'s runtime", 30)
            # Waves, each waited for until Prometheus has seen it: rates need increases between scrapes.
            # The pictures get a longer run (and RabbitMQ's 5 s statistics interval a chance to show depth).
            for wave in range(8 if os.environ.get("ASYA_OBS_PLOTS_DIR") else 2):
                ids = await submit(gw, [score, store], ok=3, bad=1, wave=wave)
                await wait_final(gw, ids, procs)
                finished += len(ids)
                want = finished

                def seen(want: int = want) -> bool:
                    got = finite_values(prom.query("sum(asya_gateway_jobs_finished_total)"))
                    return bool(got) and got[0] >= want

                await asyncio.to_thread(wait_for, seen, f"Prometheus sees {want} finished jobs", 30)
            missing = await asyncio.to_thread(wait_all_queries, prom, score)
            assert not missing, "panel queries without data:\n" + "\n".join(missing) + "\n" + logs_text(procs)
            if os.environ.get("ASYA_OBS_PLOTS_DIR"):  # the pictures of docs/observability.md
                plot = [sys.executable, str(DOCS_SCRIPT), "plots", prom.url, score, str(started), str(time.time())]
                subprocess.run([*plot, os.environ["ASYA_OBS_PLOTS_DIR"]], check=True, timeout=120)
        finally:
            await asyncio.to_thread(prom.stop)
            for p in procs:
                p.stop()


async def submit(gw: Any, route: list[str], ok: int, bad: int, wave: int) -> list[str]:
    ids = []
    async with gw.client() as c:
        for i in range(ok + bad):
            payload: dict[str, Any] = {"n": i, "wave": wave, "fail": i >= ok}
            r = await c.post("/jobs", json={"route": {"actors": route}, "payload": payload})
            assert r.status_code in (200, 201, 202), r.text
            ids.append(r.json()["id"])
    return ids


async def submit_one(gw: Any, route: list[str], payload: dict[str, Any]) -> str:
    async with gw.client() as c:
        r = await c.post("/jobs", json={"route": {"actors": route}, "payload": payload})
        assert r.status_code in (200, 201, 202), r.text
        return str(r.json()["id"])


async def wait_final(gw: Any, ids: list[str], procs: list[Proc]) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    async with gw.client() as c:
        for job in ids:
            while (status := (await c.get(f"/jobs/{job}")).json()["status"]) not in ("succeeded", "failed"):
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"job {job} still {status} after 60 s\n" + logs_text(procs))
                await asyncio.sleep(0.1)


def wait_all_queries(prom: Prometheus, actor: str, timeout: float = 30.0) -> list[str]:
    """Query every panel target until each non-exempt one has returned a finite sample once; those that never did.

    Once is enough: a rate over a 30 s window slides past the run while the loop still waits for a slow query.
    """
    queries = [(key, expr) for key, expr in panel_queries(actor) if key not in EXEMPT]
    answered: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + timeout
    while True:
        answered |= {key for key, expr in queries if key not in answered and finite_values(prom.query(expr))}
        missing = [f"{key}: {expr}" for key, expr in queries if key not in answered]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)
