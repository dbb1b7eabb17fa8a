"""Small statistics helpers: nearest-rank percentiles and medians, no numpy needed."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def latency_summary(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds of one run's latency samples (seconds)."""
    ms = [s * 1000 for s in samples_s]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms) if ms else math.nan,
        "n": len(ms),
    }


def rnd(value: float, digits: int = 3) -> float | None:
    """Round for JSON; NaN becomes null."""
    if value is None or math.isnan(value):
        return None
    return round(value, digits)
