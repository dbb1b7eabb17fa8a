"""``make bench``: Asya on RabbitMQ and on ``local`` vs. a Celery chain; table + JSON.

    python -m bench.run --amqp-url amqp://guest:guest@127.0.0.1:5672/

Measures (see docs/benchmarks.md for what each number means):
  1+2. direct publish->consume baseline and one hop through sidecar+runtime, one
       envelope at a time, interleaved; hop overhead = hop - baseline (p50, p99);
  3.   one actor's throughput with N pre-loaded envelopes, per prefetch value;
  4.   a 3-actor pipeline: throughput (N pre-loaded) and latency (one at a time);
  5.   a Celery 3-task chain on the same RabbitMQ, runs interleaved with (4);
  6.   sidecar and runtime RSS after the throughput runs.
Every measurement runs ``--runs`` times; the report gives the median.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.asya_bench import Config, TransportBench
from bench.celery_bench import CeleryBench, settings_note
from bench.dramatiq_bench import DramatiqBench
from bench.dramatiq_bench import settings_note as dramatiq_note
from bench.plots import write_plots
from bench.report import (
    TARGETS,
    print_peers,
    print_table,
    print_targets,
    summarize_celery,
    summarize_dramatiq,
    summarize_transport,
)
from bench.stats import median

console = Console(stderr=True)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.run",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument(
        "--amqp-url",
        default=os.environ.get("AMQP_URL", ""),
        help="RabbitMQ URL (env AMQP_URL)",
    )
    p.add_argument("--transports", default="rabbitmq,local", help="comma list of rabbitmq, local")
    p.add_argument("--n", type=int, default=5000, help="envelopes pre-loaded per throughput run")
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        help="repetitions of every measurement (median reported)",
    )
    p.add_argument("--samples", type=int, default=300, help="sequential envelopes per latency run")
    p.add_argument("--payload-bytes", type=int, default=1024)
    p.add_argument(
        "--prefetch",
        default="16,64",
        help="sidecar prefetch values tried for one actor",
    )
    p.add_argument(
        "--celery",
        default="threads,8,16",
        help="pool,concurrency,prefetch-multiplier; 'off' skips",
    )
    p.add_argument(
        "--dramatiq",
        default="on",
        help="'off' skips the Dramatiq pipeline (both variants)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--work",
        type=Path,
        default=None,
        help="work dir for logs and sockets (default: a temp dir)",
    )
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in ("asya", "aio-pika", "aiormq", "uvloop", "celery", "kombu"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        versions["rabbitmq-server"] = (
            subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        versions["rabbitmq-server"] = None
    return {
        "versions": versions,
        "sidecar_event_loop": os.environ.get("ASYA_EVENT_LOOP", "auto (uvloop when installed)"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


async def bench_transport(
    kind: str,
    url: str,
    work: Path,
    cfg: Config,
    celery: CeleryBench | None,
    cel: Any,
    dramatiq: DramatiqBench | None = None,
) -> TransportBench:
    tb = TransportBench(kind, url, work / kind, cfg)
    tb.start_runtimes()
    try:
        for i in range(cfg.runs):
            run = await tb.latency_run()
            console.log(
                f"{kind} latency run {i + 1}: baseline p50 {run['direct']['p50']:.2f} ms, hop p50 "
                f"{run['hop']['p50']:.2f} ms, overhead p50/p99 {run['hop_overhead_ms']['p50']:.2f}/"
                f"{run['hop_overhead_ms']['p99']:.2f} ms, pipeline p50 {run['pipeline']['p50']:.2f} ms"
            )
        for i in range(cfg.runs):
            for pf in cfg.prefetches:  # interleaved so slow drift hits every prefetch alike
                run = await tb.actor_run(pf)
                console.log(f"{kind} one actor, prefetch {pf}, run {i + 1}: {run['eps']:.0f} env/s")
        best = max(
            cfg.prefetches,
            key=lambda pf: median([r["eps"] for r in tb.results.actor_runs if r["prefetch"] == pf]),
        )
        for i in range(cfg.runs):
            run = await tb.pipeline_run(best)
            console.log(f"{kind} 3-actor pipeline, prefetch {best}, run {i + 1}: {run['eps']:.0f} env/s")
            if celery is not None:
                crun = await celery.run(*cel)
                console.log(f"celery 3-task chain {cel[0]}x{cel[1]}, run {i + 1}: {crun['eps']:.0f} chains/s")
            if dramatiq is not None:
                for confirm in (False, True):
                    drun = await dramatiq.run(confirm)
                    tag = "confirm_delivery=True" if confirm else "defaults"
                    console.log(f"dramatiq 3-actor pipeline ({tag}), run {i + 1}: {drun['eps']:.0f} items/s")
    finally:
        tb.stop_runtimes()
        tb.cleanup()
    return tb


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [k.strip() for k in args.transports.split(",") if k.strip()]
    if "rabbitmq" in kinds and not args.amqp_url:
        raise SystemExit("rabbitmq needs --amqp-url or AMQP_URL (ci/bench.sh starts a private broker)")
    cfg = Config(
        n=args.n,
        runs=args.runs,
        samples=args.samples,
        payload_bytes=args.payload_bytes,
        prefetches=tuple(int(x) for x in args.prefetch.split(",")),
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="asya-bench-"))
    started = time.perf_counter()
    info = machine()
    result: dict[str, Any] = {"transports": {}}
    cel: tuple[str, int, int] | None = None
    if args.celery != "off" and "rabbitmq" in kinds:
        pool, conc, mult = args.celery.split(",")
        cel = (pool, int(conc), int(mult))
    celery = CeleryBench(args.amqp_url, work / "celery", cfg.n, cfg.payload_bytes) if cel else None
    dq = None
    if args.dramatiq != "off" and "rabbitmq" in kinds:
        dq = DramatiqBench(args.amqp_url, work / "dramatiq", cfg.n, cfg.payload_bytes)
    for kind in kinds:
        t0 = time.perf_counter()
        url = args.amqp_url if kind == "rabbitmq" else ""
        rmq = kind == "rabbitmq"
        tb = await bench_transport(kind, url, work, cfg, celery if rmq else None, cel, dq if rmq else None)
        result["transports"][kind] = summarize_transport(tb)
        result["transports"][kind]["raw"] = {
            "latency_runs": tb.results.latency_runs,
            "actor_runs": tb.results.actor_runs,
            "pipeline_runs": tb.results.pipeline_runs,
        }
        result["transports"][kind]["transport_elapsed_s"] = round(time.perf_counter() - t0, 1)
    result["celery"] = summarize_celery(celery.runs if celery else [])
    if celery:
        result["celery"]["settings"] = settings_note()
        result["celery"]["raw"] = celery.runs
    result["dramatiq"] = summarize_dramatiq(dq.runs if dq else {})
    if dq:
        result["dramatiq"]["settings"] = dramatiq_note()
        result["dramatiq"]["raw"] = dq.runs[False] + dq.runs[True]
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["settings"] = {
        "n": cfg.n,
        "runs": cfg.runs,
        "latency_samples_per_run": cfg.samples,
        "latency_warmup_per_run": cfg.warmup,
        "payload_bytes": cfg.payload_bytes,
        "prefetch": list(cfg.prefetches),
        "latency_prefetch": cfg.latency_prefetch,
        "handler": "bench.handlers.echo (sync def, payload mode)",
        "celery": args.celery,
    }
    result["machine"] = info
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return flatten(result)


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """RabbitMQ numbers at the top level, ``local`` under its own key, then the rest."""
    out: dict[str, Any] = {}
    rmq = result["transports"].get("rabbitmq")
    if rmq:
        out.update({k: v for k, v in rmq.items() if k != "raw"})
    celery_eps = result["celery"].get("celery_chain_throughput_eps")
    out["celery_chain_throughput_eps"] = celery_eps
    pipe = (rmq or {}).get("pipeline_throughput_eps")
    out["pipeline_vs_celery"] = round(pipe / celery_eps, 2) if pipe and celery_eps else None
    for key in (
        "dramatiq_pipeline_throughput_eps",
        "dramatiq_confirm_pipeline_throughput_eps",
    ):
        out[key] = result["dramatiq"].get(key)
    out["pipeline_vs_dramatiq"] = (
        round(pipe / out["dramatiq_pipeline_throughput_eps"], 2)
        if pipe and out["dramatiq_pipeline_throughput_eps"]
        else None
    )
    if "local" in result["transports"]:
        out["local"] = result["transports"]["local"]
    out["celery"] = result["celery"]
    out["dramatiq"] = result["dramatiq"]
    out["targets"] = targets(out) if rmq else {}
    out["settings"] = result["settings"]
    out["machine"] = result["machine"]
    out["elapsed_s"] = result["elapsed_s"]
    if "local" in out:
        out["local"] = {k: v for k, v in out["local"].items() if k != "raw"}
    out["raw"] = {k: v.get("raw") for k, v in result["transports"].items()}
    out["raw"]["celery"] = out["celery"].pop("raw", None)
    out["raw"]["dramatiq"] = out["dramatiq"].pop("raw", None)
    out["transports"] = {k: {kk: vv for kk, vv in v.items() if kk != "raw"} for k, v in result["transports"].items()}
    return out


def targets(out: dict[str, Any]) -> dict[str, Any]:
    """Every target of issues 2 and 13 with this run's value and met/missed (None: not measured)."""

    def check(value: Any, limit: float | None, at_most: bool, text: str) -> dict[str, Any]:
        met = None if value is None or limit is None else (value <= limit if at_most else value >= limit)
        return {
            "value": value,
            "target": None if limit is None else round(limit, 3),
            "rule": text,
            "met": met,
        }

    base, hop = out["baseline_latency_ms"], out["hop_latency_ms"]
    p50_lim = None if base["p50"] is None else 2 * base["p50"] + 0.5
    p99_lim = None if base["p99"] is None else 2 * base["p99"] + 2.0
    t = TARGETS
    return {
        "hop_p50_ms": check(hop["p50"], p50_lim, True, "≤ 2 × baseline p50 + 0.5 ms"),
        "hop_p99_ms": check(hop["p99"], p99_lim, True, "≤ 2 × baseline p99 + 2 ms"),
        "hop_overhead_p50_ms": check(out["hop_overhead_ms"]["p50"], t["hop_overhead_p50_ms"], True, "≤ 1 ms"),
        "hop_overhead_p99_ms": check(out["hop_overhead_ms"]["p99"], t["hop_overhead_p99_ms"], True, "≤ 5 ms"),
        "runtime_cpu_ms_per_envelope": check(out["runtime_cpu_ms_per_envelope"], t["runtime_cpu"], True, "≤ 0.20 ms"),
        "sidecar_cpu_ms_per_envelope": check(out["sidecar_cpu_ms_per_envelope"], t["sidecar_cpu"], True, "≤ 0.45 ms"),
        "actor_cpu_ms_per_envelope": check(out["actor_cpu_ms_per_envelope"], t["actor_cpu"], True, "≤ 1.1 ms"),
        "actor_throughput_eps": check(
            out["actor_throughput_eps"],
            t["actor_throughput_eps"],
            False,
            "≥ 1,600 env/s",
        ),
        "pipeline_vs_dramatiq": check(out["pipeline_vs_dramatiq"], 1.0, False, "≥ 1× Dramatiq defaults"),
        "pipeline_vs_celery": check(out["pipeline_vs_celery"], t["pipeline_vs_celery"], False, "≥ 2× Celery"),
        "sidecar_rss_mib": check(out["sidecar_rss_mib"], t["sidecar_rss_mib"], True, "≤ 35 MiB"),
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    table_console = Console(width=max(Console().width, 110))
    print_table(
        {
            "transports": result["transports"],
            "settings": result["settings"],
            "celery": result["celery"],
        },
        table_console,
    )
    print_peers(result, table_console)
    print_targets(result["targets"], table_console)
    for png in write_plots(result, args.out.parent):
        print(f"plot: {png}")
    print(f"results: {args.out} (elapsed {result['elapsed_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
