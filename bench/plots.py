"""PNG plots beside the JSON: latency distributions and throughput per contender.

Drawn from the results of the same run only (``bench/results/latest.json``'s content);
matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _samples(raw: dict[str, Any] | None, case: str) -> list[float]:
    runs = (raw or {}).get("latency_runs") or []
    return sorted(x for run in runs for x in (run.get("samples_ms") or {}).get(case, []))


def latency_plot(result: dict[str, Any], path: Path) -> Path | None:
    """CDF of one-at-a-time latency: direct publish->consume baseline, one hop, 3-actor pipeline."""
    raw = result.get("raw") or {}
    series = [
        (
            "rabbitmq: direct publish→consume (baseline)",
            _samples(raw.get("rabbitmq"), "direct"),
        ),
        ("rabbitmq: one hop (sidecar + runtime)", _samples(raw.get("rabbitmq"), "hop")),
        ("rabbitmq: 3-actor pipeline", _samples(raw.get("rabbitmq"), "pipeline")),
        ("local: one hop", _samples(raw.get("local"), "hop")),
    ]
    series = [(label, xs) for label, xs in series if xs]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, xs in series:
        n = len(xs)
        ax.step(xs, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})")
    lim = (result.get("targets") or {}).get("hop_p50_ms", {}).get("target")
    if lim:
        ax.axvline(lim, color="grey", linestyle=":", label=f"hop p50 target {lim:.2f} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of envelopes ≤ x")
    ax.set_title("One envelope at a time: latency distribution (all runs of this bench)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_plot(result: dict[str, Any], path: Path) -> Path | None:
    """Median throughput of the 3-step no-op pipeline per contender, every run as a dot."""
    d = result.get("dramatiq") or {}
    c = result.get("celery") or {}
    bars = [
        (
            "Asya\n(confirms)",
            result.get("pipeline_throughput_eps"),
            result.get("pipeline_runs_eps"),
        ),
        ("Celery\n(confirms)", c.get("celery_chain_throughput_eps"), c.get("runs_eps")),
        (
            "Dramatiq\n(defaults)",
            d.get("dramatiq_pipeline_throughput_eps"),
            d.get("default_runs_eps"),
        ),
        (
            "Dramatiq\n(confirm_delivery)",
            d.get("dramatiq_confirm_pipeline_throughput_eps"),
            d.get("confirm_runs_eps"),
        ),
    ]
    bars = [b for b in bars if b[1] is not None]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = list(range(len(bars)))
    ax.bar(
        xs,
        [b[1] for b in bars],
        color=["#3b7dd8", "#8c8c8c", "#e08a2c", "#b35c00"][: len(bars)],
    )
    for x, (_, med, runs) in zip(xs, bars, strict=True):
        ax.plot([x] * len(runs or []), runs or [], "k.", markersize=6)
        ax.annotate(f"{med:.0f}", (x, med), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(xs, [b[0] for b in bars])
    ax.set_ylabel("items per second (median; dots: runs)")
    ax.set_title("3-step no-op pipeline, same RabbitMQ, same run")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(result: dict[str, Any], out_dir: Path) -> list[Path]:
    made = [
        latency_plot(result, out_dir / "latency.png"),
        throughput_plot(result, out_dir / "throughput.png"),
    ]
    return [p for p in made if p is not None]
