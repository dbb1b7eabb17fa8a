"""Summaries (medians over runs), the JSON written to bench/results/latest.json, and the table."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.asya_bench import TransportBench
from bench.stats import median, rnd

TARGETS = {  # issue 2's, tightened by issue 13 where it set its own
    "hop_overhead_p50_ms": 1.0,
    "hop_overhead_p99_ms": 5.0,
    "actor_throughput_eps": 1600.0,
    "pipeline_vs_celery": 2.0,
    "sidecar_rss_mib": 35.0,
    "runtime_cpu": 0.20,
    "sidecar_cpu": 0.45,
    "actor_cpu": 1.1,
}


def cpu_summary(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median CPU ms per envelope, summed by role (sidecars, runtimes, worker, broker, bench)."""
    roles: dict[str, list[float]] = {}
    for run in runs:
        per_role: dict[str, float] = {}
        for name, ms in (run.get("cpu_ms_per_envelope") or {}).items():
            role = name.split(" ")[0]
            per_role[role] = per_role.get(role, 0.0) + (ms if ms is not None else math.nan)
        for role, ms in per_role.items():
            roles.setdefault(role, []).append(ms)
    out = {role: rnd(median(v), 3) for role, v in roles.items()}
    if out:
        out["total"] = rnd(sum(v for v in out.values() if v is not None), 3)
    return out


def summarize_transport(tb: TransportBench) -> dict[str, Any]:
    """Median over runs of every number for one transport."""
    r = tb.results
    lat = r.latency_runs

    def lat_med(kind: str, p: str) -> float:
        return median([run[kind][p] for run in lat])

    by_prefetch: dict[int, list[dict[str, Any]]] = {}
    for run in r.actor_runs:
        by_prefetch.setdefault(run["prefetch"], []).append(run)
    actor: dict[str, dict[str, Any]] = {
        str(pf): {
            "eps": rnd(median([x["eps"] for x in runs]), 1),
            "runs_eps": [rnd(x["eps"], 1) for x in runs],
            "sidecar_rss_mib": rnd(median([x["sidecar_rss_mib"] for x in runs]), 1),
            "runtime_rss_mib": rnd(median([x["runtime_rss_mib"] for x in runs]), 1),
            "cpu_ms_per_envelope": cpu_summary(runs),
        }
        for pf, runs in sorted(by_prefetch.items())
    }
    best_pf = max(actor, key=lambda k: actor[k]["eps"] or 0.0) if actor else None
    pipe = r.pipeline_runs
    split: dict[str, Any] = actor[best_pf]["cpu_ms_per_envelope"] if best_pf else {}
    out: dict[str, Any] = {
        "hop_overhead_ms": {
            "p50": rnd(median([run["hop_overhead_ms"]["p50"] for run in lat])),
            "p99": rnd(median([run["hop_overhead_ms"]["p99"] for run in lat])),
        },
        "baseline_latency_ms": {
            "p50": rnd(lat_med("direct", "p50")),
            "p99": rnd(lat_med("direct", "p99")),
        },
        "hop_latency_ms": {
            "p50": rnd(lat_med("hop", "p50")),
            "p99": rnd(lat_med("hop", "p99")),
        },
        "pipeline_latency_ms": {
            "p50": rnd(lat_med("pipeline", "p50")),
            "p99": rnd(lat_med("pipeline", "p99")),
        },
        "actor_throughput_eps": actor[best_pf]["eps"] if best_pf else None,
        "actor_prefetch": int(best_pf) if best_pf else None,
        "actor_throughput_by_prefetch": actor,
        "pipeline_throughput_eps": rnd(median([x["eps"] for x in pipe]), 1),
        "pipeline_runs_eps": [rnd(x["eps"], 1) for x in pipe],
        "pipeline_prefetch": pipe[0]["prefetch"] if pipe else None,
        # issue 13's keys: one actor at its best prefetch, CPU ms per envelope by role and in all
        "actor_cpu_split_ms_per_envelope": split,
        "runtime_cpu_ms_per_envelope": split.get("runtime"),
        "sidecar_cpu_ms_per_envelope": split.get("sidecar"),
        "actor_cpu_ms_per_envelope": split.get("total"),
        "pipeline_cpu_ms_per_envelope": cpu_summary(pipe),
        "sidecar_rss_mib": actor[best_pf]["sidecar_rss_mib"] if best_pf else None,
        "runtime_rss_mib": actor[best_pf]["runtime_rss_mib"] if best_pf else None,
        "pipeline_sidecar_rss_mib_max": rnd(max((max(x["sidecar_rss_mib"]) for x in pipe), default=math.nan), 1),
        "error_end_messages": sum(x.get("error_end", 0) for x in (*lat, *r.actor_runs, *pipe)),
    }
    return out


def summarize_dramatiq(runs: dict[bool, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians of both Dramatiq variants (``runs[False]`` defaults, ``runs[True]`` confirms)."""
    out: dict[str, Any] = {}
    for confirm, key in (
        (False, "dramatiq_pipeline_throughput_eps"),
        (True, "dramatiq_confirm_pipeline_throughput_eps"),
    ):
        rs = runs.get(confirm) or []
        if not rs:
            continue
        tag = "confirm" if confirm else "default"
        out[key] = rnd(median([x["eps"] for x in rs]), 1)
        out[f"{tag}_runs_eps"] = [rnd(x["eps"], 1) for x in rs]
        out[f"{tag}_worker_rss_mib"] = rnd(median([x["worker_rss_mib"] for x in rs]), 1)
        out[f"{tag}_cpu_ms_per_item"] = cpu_summary(rs)
    return out


def summarize_celery(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not runs:
        return {}
    return {
        "celery_chain_throughput_eps": rnd(median([x["eps"] for x in runs]), 1),
        "runs_eps": [rnd(x["eps"], 1) for x in runs],
        "pool": runs[0]["pool"],
        "concurrency": runs[0]["concurrency"],
        "prefetch_multiplier": runs[0]["prefetch_multiplier"],
        "worker_rss_mib": rnd(median([x["worker_rss_mib"] for x in runs]), 1),
        "cpu_ms_per_chain": cpu_summary(runs),
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value}{unit}"


def _cpu(cpu: dict[str, Any]) -> str:
    """'1.37 ms = sidecar 0.64 + runtime 0.21 + broker 0.36 + bench 0.16'."""
    if not cpu:
        return "—"
    parts = " + ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "total" and v is not None)
    return f"{cpu.get('total') or 0:.2f} ms ({parts})"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("[green]met[/]" if ok else "[red]missed[/]")


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    transports = [t for t in ("rabbitmq", "local") if t in result["transports"]]
    table = Table(title=f"Asya benchmark (N={result['settings']['n']}, runs={result['settings']['runs']}, medians)")
    table.add_column("metric")
    for t in transports:
        table.add_column(t, justify="right")
    table.add_column("target (rabbitmq)", justify="right")
    table.add_column("", justify="center")
    rmq = result["transports"].get("rabbitmq", {})
    celery = result.get("celery", {}).get("celery_chain_throughput_eps")

    def add(label: str, get: Any, unit: str, target: str, ok: bool | None) -> None:
        cells = [_fmt(get(result["transports"][t]), unit) for t in transports]
        table.add_row(label, *cells, target, _verdict(ok))

    def le(v: Any, lim: float) -> bool | None:
        return None if v is None else v <= lim

    add(
        "baseline publish→consume p50",
        lambda r: r["baseline_latency_ms"]["p50"],
        " ms",
        "",
        None,
    )
    add(
        "baseline publish→consume p99",
        lambda r: r["baseline_latency_ms"]["p99"],
        " ms",
        "",
        None,
    )
    add(
        "one hop p50 / p99",
        lambda r: f"{_fmt(r['hop_latency_ms']['p50'])} / {_fmt(r['hop_latency_ms']['p99'])}",
        " ms",
        "",
        None,
    )
    add(
        "hop overhead p50",
        lambda r: r["hop_overhead_ms"]["p50"],
        " ms",
        "≤ 1 ms",
        le(rmq.get("hop_overhead_ms", {}).get("p50"), 1),
    )
    add(
        "hop overhead p99",
        lambda r: r["hop_overhead_ms"]["p99"],
        " ms",
        "≤ 5 ms",
        le(rmq.get("hop_overhead_ms", {}).get("p99"), 5),
    )
    add(
        "one actor throughput",
        lambda r: r["actor_throughput_eps"],
        " env/s",
        "≥ 1,600",
        None if not rmq else (rmq["actor_throughput_eps"] or 0) >= 1600,
    )
    add("  (best prefetch)", lambda r: r["actor_prefetch"], "", "", None)
    for pf in result["settings"]["prefetch"]:
        add(
            f"  prefetch {pf}",
            lambda r, pf=pf: r["actor_throughput_by_prefetch"].get(str(pf), {}).get("eps"),
            " env/s",
            "",
            None,
        )
    ratio = None
    if rmq.get("pipeline_throughput_eps") and celery:
        ratio = rmq["pipeline_throughput_eps"] / celery
    add(
        "3-actor pipeline throughput",
        lambda r: r["pipeline_throughput_eps"],
        " env/s",
        "≥ 2× Celery",
        None if ratio is None else ratio >= 2,
    )
    add(
        "3-actor pipeline p50 / p99",
        lambda r: f"{_fmt(r['pipeline_latency_ms']['p50'])} / {_fmt(r['pipeline_latency_ms']['p99'])}",
        " ms",
        "",
        None,
    )
    add(
        "  CPU per envelope (all procs)",
        lambda r: _cpu(r["pipeline_cpu_ms_per_envelope"]),
        "",
        "",
        None,
    )
    add(
        "one actor: CPU per envelope",
        lambda r: _cpu(r["actor_cpu_split_ms_per_envelope"]),
        "",
        "",
        None,
    )
    add(
        "sidecar RSS",
        lambda r: r["sidecar_rss_mib"],
        " MiB",
        "≤ 35 MiB",
        le(rmq.get("sidecar_rss_mib"), 35),
    )
    add("runtime RSS", lambda r: r["runtime_rss_mib"], " MiB", "", None)
    if celery is not None:
        c = result["celery"]
        cells = [_fmt(celery, " chains/s") if t == "rabbitmq" else "" for t in transports]
        table.add_row(f"Celery 3-task chain ({c['pool']}×{c['concurrency']})", *cells, "", "")
        cells = [_cpu(c.get("cpu_ms_per_chain", {})) if t == "rabbitmq" else "" for t in transports]
        table.add_row("  CPU per chain (all procs)", *cells, "", "")
        cells = [_fmt(ratio, "×") if t == "rabbitmq" and ratio else "" for t in transports]
        table.add_row(
            "pipeline ÷ Celery",
            *cells,
            "≥ 2×",
            _verdict(None if ratio is None else ratio >= 2),
        )
    console.print(table)


def print_targets(targets: dict[str, Any], console: Console) -> None:
    table = Table(title="Targets (rabbitmq, this run)")
    for col in ("target", "value", "limit", "rule", ""):
        table.add_column(col, justify="left" if col in ("target", "rule") else "right")
    for name, t in targets.items():
        table.add_row(name, _fmt(t["value"]), _fmt(t["target"]), t["rule"], _verdict(t["met"]))
    console.print(table)


def print_peers(result: dict[str, Any], console: Console) -> None:
    """The 3-step pipeline per contender, same broker, same run, same timing."""
    table = Table(title="3-step no-op pipeline on the same RabbitMQ (medians)")
    for col in ("contender", "throughput", "CPU per item (all procs)", "runs"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    rows = [
        (
            "Asya (confirms, ack after confirm)",
            result.get("pipeline_throughput_eps"),
            result.get("pipeline_cpu_ms_per_envelope") or {},
            result.get("pipeline_runs_eps"),
        )
    ]
    c = result.get("celery") or {}
    if c:
        rows.append(
            (
                f"Celery chain ({c['pool']}×{c['concurrency']}, confirms)",
                c.get("celery_chain_throughput_eps"),
                c.get("cpu_ms_per_chain") or {},
                c.get("runs_eps"),
            )
        )
    d = result.get("dramatiq") or {}
    for tag, key, label in (
        (
            "default",
            "dramatiq_pipeline_throughput_eps",
            "Dramatiq (defaults, no confirms)",
        ),
        (
            "confirm",
            "dramatiq_confirm_pipeline_throughput_eps",
            "Dramatiq (confirm_delivery)",
        ),
    ):
        if d.get(key) is not None:
            rows.append(
                (
                    label,
                    d[key],
                    d.get(f"{tag}_cpu_ms_per_item") or {},
                    d.get(f"{tag}_runs_eps"),
                )
            )
    for label, eps, cpu, runs in rows:
        table.add_row(
            label,
            _fmt(eps, " /s"),
            _cpu(cpu),
            ", ".join(f"{x:.0f}" for x in runs or []),
        )
    console.print(table)
