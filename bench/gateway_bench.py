"""``make bench-gateway``: the gateway against its issue-10 targets; table + bench/results/gateway.json.

    python -m bench.gateway_bench [--dsn postgresql://...] [--runs 3] [--n 2000]

A real ``python -m asya.gateway serve`` process (uvicorn) on a real PostgreSQL
(``ci/postgresql.sh``: Debian's server with its defaults, so ``fsync`` and
``synchronous_commit`` are on and every commit is durable; the values are read
back and recorded) and the ``local`` transport. The bench process is the client:
1. submissions/s: ``--n`` ``POST /jobs`` from ``--concurrency`` concurrent
   clients, ``--runs`` times, median reported;
2. ``--streams`` concurrent SSE streams (one per job) on the one replica: the
   gateway's RSS (``/proc/<pid>/status`` VmRSS) before they open and once all are
   open and every one has received a live event;
3. with those streams open, ``--samples`` progress reports posted one at a time:
   latency from just before the POST to the event's arrival at its stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from rich.console import Console
from rich.table import Table

from bench.gateway_sse import Client, Stream, submissions, wait_until
from bench.procs import REPO, Proc, child_env, cpu_seconds, wait_for
from bench.stats import latency_summary, median, rnd

console = Console(stderr=True)
DEFAULT_OUT = REPO / "bench" / "results" / "gateway.json"
TARGETS = {"submissions_per_s": 500.0, "sse_rss_growth_mib": 100.0, "report_to_sse_p99_ms": 50.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.gateway_bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--dsn",
        default=os.environ.get("ASYA_BENCH_POSTGRES_DSN", ""),
        help="use this PostgreSQL (default: start one with ci/postgresql.sh)",
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--n", type=int, default=2000, help="submissions per run")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent submitting clients")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--samples", type=int, default=300, help="sequential reports timed to their SSE arrival")
    p.add_argument(
        "--pool", type=int, default=int(os.environ.get("ASYA_GATEWAY_DB_POOL", "20")), help="gateway DB pool size"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_postgres(work: Path) -> tuple[str, int | None]:
    """A private server; (DSN, pid whose process tree is the server, for CPU accounting)."""
    out = subprocess.run(
        [str(REPO / "ci" / "postgresql.sh"), "start", str(work)], check=True, capture_output=True, text=True
    )
    dsn = next(line[4:] for line in out.stdout.splitlines() if line.startswith("DSN="))
    return dsn, int((work / "server.pid").read_text())


class CpuMeter:
    """CPU seconds used by the gateway, the PostgreSQL server and this (client) process over a stretch."""

    def __init__(self, gateway_pid: int, pg_pid: int | None) -> None:
        self.pids = {"gateway": gateway_pid, "postgres": pg_pid}

    def now(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) if pid else float("nan") for name, pid in self.pids.items()}
        out["client"] = time.process_time()
        return out

    @staticmethod
    def per_item_ms(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float | None]:
        out = {k: rnd((after[k] - before[k]) * 1000 / n, 3) for k in before}
        out["total"] = rnd(sum(v for v in out.values() if v is not None), 3)
        return out


async def database_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        names = ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


def start_gateway(dsn: str, work: Path, pool: int, tokens: tuple[str, str]) -> tuple[Proc, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = child_env(
        ASYA_GATEWAY_DATABASE_URL=dsn,
        ASYA_GATEWAY_TOKENS=tokens[0],
        ASYA_GATEWAY_REPORT_TOKEN=tokens[1],
        ASYA_GATEWAY_HOST="127.0.0.1",
        ASYA_GATEWAY_PORT=port,
        ASYA_GATEWAY_DB_POOL=pool,
        ASYA_TRANSPORT="local",
        ASYA_TRANSPORT_URL=work / "queues",
    )
    subprocess.run([sys.executable, "-m", "asya.gateway", "migrate"], env=env, check=True, capture_output=True)
    proc = Proc("gateway", [sys.executable, "-m", "asya.gateway", "serve"], env, work / "gateway.log")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_for(ready, 60, "gateway /readyz", proc)
    return proc, url


async def streams_phase(
    args: argparse.Namespace, client: Client, gw: Proc, token: str, ids: list[str]
) -> dict[str, Any]:
    """Open one stream per job, make every one receive a live event, then time sequential reports."""
    arrived: dict[tuple[str, int], float] = {}

    def on_event(kind: str, data: dict[str, Any], at: float) -> None:
        if kind == "progress":
            arrived[(str(data["id"]), int(data["step"]))] = at

    rss_before = vm_rss_mib(gw.pid)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        streams = [Stream(job, on_event) for job in ids[: args.streams]]
        for s in streams:
            s.start(session, client.url, token)
        await wait_until(
            lambda: all(s.open.is_set() and s.events >= 1 for s in streams), 120, "every stream open with its history"
        )
        sem = asyncio.Semaphore(32)

        async def live(job: str) -> None:
            async with sem:
                await client.report(job, {"actor": "bench-a", "step": 0, "steps": 2, "status": "success"})

        await asyncio.gather(*(live(s.job_id) for s in streams))
        await wait_until(lambda: len(arrived) >= len(streams), 120, "a live event on every stream")
        rss_open = vm_rss_mib(gw.pid)
        samples: list[float] = []
        posts: list[float] = []  # the POST's own round trip: how much of the latency is the commit path
        for i in range(args.samples):
            job = streams[i % len(streams)].job_id
            step = 1 + i // len(streams)
            t0 = time.perf_counter()
            await client.report(job, {"actor": "bench-b", "step": step, "steps": 2, "status": "success"})
            posts.append(time.perf_counter() - t0)
            await wait_until(lambda: (job, step) in arrived, 10, f"event {job}/{step}")  # noqa: B023
            samples.append(arrived[(job, step)] - t0)
        rss_end = vm_rss_mib(gw.pid)
        for s in streams:
            await s.close()
    return {
        "streams": len(streams),
        "rss_before_mib": rnd(rss_before, 1),
        "rss_open_mib": rnd(rss_open, 1),
        "rss_end_mib": rnd(rss_end, 1),
        "rss_growth_mib": rnd(max(rss_open, rss_end) - rss_before, 1),
        "latency_ms": {k: rnd(v, 2) for k, v in latency_summary(samples).items()},
        "report_post_ms": {k: rnd(v, 2) for k, v in latency_summary(posts).items()},
    }


async def main_async(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    load_start = [round(x, 2) for x in os.getloadavg()]
    dsn, pg_pid = (args.dsn, None) if args.dsn else start_postgres(work / "pg")
    tokens = (secrets.token_hex(16), secrets.token_hex(16))
    gw, url = start_gateway(dsn, work, args.pool, tokens)
    meter = CpuMeter(gw.pid, pg_pid)
    try:
        db = await database_settings(dsn)
        async with Client(url, *tokens, connections=args.concurrency) as client:
            await submissions(client, 200, args.concurrency)  # warm-up: pool connections, code paths
            rates: list[float] = []
            cpu: list[dict[str, float | None]] = []
            ids: list[str] = []
            for i in range(args.runs):
                before = meter.now()
                rate, ids = await submissions(client, args.n, args.concurrency)
                cpu.append(meter.per_item_ms(before, meter.now(), args.n))
                rates.append(rate)
                console.log(
                    f"submissions run {i + 1}: {rate:.0f} jobs/s ({args.n} jobs, {args.concurrency} clients); CPU ms/job {cpu[-1]}"
                )
            sse = await streams_phase(args, client, gw, tokens[0], ids)
            console.log(
                f"{sse['streams']} streams: RSS {sse['rss_before_mib']} -> {sse['rss_open_mib']} MiB; report->SSE {sse['latency_ms']}"
            )
        gw.check()
    finally:
        gw.stop()
    return {
        "submissions_per_s": rnd(median(rates), 1),
        "submissions_runs": [rnd(r, 1) for r in rates],
        "submission_cpu_ms": {k: rnd(median([c[k] or float("nan") for c in cpu]), 3) for k in cpu[0]},
        "sse": sse,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "dsn")},
        "database": db,
        "machine": {
            "nproc": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
    }  # fmt: skip


def targets(result: dict[str, Any]) -> dict[str, Any]:
    values = {
        "submissions_per_s": result["submissions_per_s"],
        "sse_rss_growth_mib": result["sse"]["rss_growth_mib"],
        "report_to_sse_p99_ms": result["sse"]["latency_ms"]["p99"],
    }
    out = {}
    for name, value in values.items():
        at_least = name == "submissions_per_s"
        met = None if value is None else (value >= TARGETS[name] if at_least else value <= TARGETS[name])
        out[name] = {"value": value, "target": TARGETS[name], "met": met}
    return out


def print_table(result: dict[str, Any]) -> None:
    table = Table(title="gateway (uvicorn + PostgreSQL, durable commits, local transport)")
    for col in ("measure", "value", "target", "met"):
        table.add_column(col)
    labels = {
        "submissions_per_s": "POST /jobs per s (median)",
        "sse_rss_growth_mib": f"RSS growth, {result['sse']['streams']} SSE streams (MiB)",
        "report_to_sse_p99_ms": "report -> SSE client p99 (ms)",
    }
    for name, t in result["targets"].items():
        sign = ">=" if name == "submissions_per_s" else "<="
        table.add_row(
            labels[name], str(t["value"]), f"{sign} {t['target']:g}", {True: "yes", False: "NO", None: "?"}[t["met"]]
        )
    lat = result["sse"]["latency_ms"]
    table.add_row("report -> SSE client p50 (ms)", str(lat["p50"]), "", "")
    post = result["sse"]["report_post_ms"]
    table.add_row("report POST round trip p50 / p99 (ms)", f"{post['p50']} / {post['p99']}", "", "")
    cpu = result["submission_cpu_ms"]
    table.add_row(
        "CPU ms per job: gateway / postgres / client", f"{cpu['gateway']} / {cpu['postgres']} / {cpu['client']}", "", ""
    )
    table.add_row(
        "load average at start (nproc)",
        f"{result['machine']['loadavg_start'][0]} ({result['machine']['nproc']})",
        "",
        "",
    )
    Console(width=100).print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="asya-bench-gw.") as tmp:
        work = Path(tmp)
        try:
            result = asyncio.run(main_async(args, work))
        finally:
            if not args.dsn and (work / "pg" / "env").exists():
                subprocess.run(
                    [str(REPO / "ci" / "postgresql.sh"), "stop", str(work / "pg")], check=False, capture_output=True
                )
    result["targets"] = targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
