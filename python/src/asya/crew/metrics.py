"""Prometheus counters of the crew actors, served at ``/metrics`` on ``ASYA_HEALTH_PORT``.

happy-end, error-end and the dead-letter path increment these through the
``Crew`` context; names and help texts come from ``asya.contracts.metrics`` so
dashboards and alert rules check against one list. A few counters in the text
exposition format need no client library, which keeps the crew image small.
"""

from __future__ import annotations

import collections

from asya.contracts import metrics as names


class CrewMetrics:
    """Monotonic counters keyed by metric name and label set."""

    def __init__(self) -> None:
        self._values: collections.defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = collections.defaultdict(
            float
        )

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> float:
        return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every counter."""
        lines: list[str] = []
        for name in sorted({n for n, _ in self._values}):
            lines.append(f"# HELP {name} {names.ALL_METRICS.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for (n, labels), value in sorted(self._values.items()):
                if n == name:
                    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return ("\n".join(lines) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
