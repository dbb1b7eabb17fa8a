"""Writes dashboards/asya-overview.json and dashboards/asya-actor.json (Grafana JSON models).

The panels live here as data so that both dashboards share one layout and one set of
variables; ``python dashboards/generate.py`` rewrites the JSON, and the structure test
(python/tests/observability/test_dashboards.py) checks that the files are what this writes.
Panels read their datasource from the ``datasource`` variable, never from a UID, so the
dashboards import into any Grafana with a Prometheus datasource.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
SCHEMA_VERSION = 39

Target = tuple[str, str]  # (expr, legendFormat)
Panel = tuple[str, str, list[Target], str]  # (title, unit, targets, what it tells you)


def _variables(actor_multi: bool) -> list[dict[str, Any]]:
    actor: dict[str, Any] = {
        "name": "actor",
        "label": "actor",
        "type": "query",
        "datasource": DS,
        "query": {
            "query": "label_values(asya_sidecar_messages_received_total, actor)",
            "refId": "actor",
        },
        "definition": "label_values(asya_sidecar_messages_received_total, actor)",
        "refresh": 2,
        "sort": 1,
        "multi": actor_multi,
        "includeAll": actor_multi,
        "current": {},
        "options": [],
    }
    if actor_multi:
        actor["allValue"] = ".+"
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "refresh": 1,
        },
        actor,
        {
            # the rabbitmq transport's queue_prefix option (asya- unless changed)
            "name": "queue_prefix",
            "label": "queue prefix",
            "type": "textbox",
            "query": "asya-",
            "current": {"text": "asya-", "value": "asya-"},
            "options": [{"selected": True, "text": "asya-", "value": "asya-"}],
        },
    ]


def _panel(pid: int, spec: Panel) -> dict[str, Any]:
    title, unit, targets, desc = spec
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {
            "h": 8,
            "w": 12,
            "x": 12 * ((pid - 1) % 2),
            "y": 8 * ((pid - 1) // 2),
        },
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "fillOpacity": 10},
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _dashboard(
    uid: str, title: str, desc: str, panels: list[Panel], multi: bool
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["asya"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables(multi)},
        "panels": [_panel(i + 1, spec) for i, spec in enumerate(panels)],
    }


A = 'actor=~"$actor"'
S = 'actor="$actor"'


def _p95(metric: str, sel: str, by: str = "actor, le") -> str:
    return f"histogram_quantile(0.95, sum by ({by}) (rate({metric}_bucket{{{sel}}}[{RI}])))"


def _mean(metric: str) -> str:
    return (
        f"sum(rate({metric}_sum{{{S}}}[{RI}])) / sum(rate({metric}_count{{{S}}}[{RI}]))"
    )


OVERVIEW: list[Panel] = [
    (
        "Jobs by status",
        "short",
        [("sum by (status) (asya_gateway_jobs)", "{{status}}")],
        "Jobs in the gateway's store by status: a growing running count with flat succeeded means work is stuck.",
    ),
    (
        "Jobs created and finished",
        "ops",
        [
            (
                f"sum by (tool) (rate(asya_gateway_jobs_created_total[{RI}]))",
                "created {{tool}}",
            ),
            (
                f"sum by (status) (rate(asya_gateway_jobs_finished_total[{RI}]))",
                "finished {{status}}",
            ),
        ],
        "Jobs per second entering (by tool) and leaving (by final status) the gateway.",
    ),
    (
        "End-to-end job latency (p50, p95)",
        "s",
        [
            (
                f"histogram_quantile(0.5, sum by (status, le) (rate(asya_gateway_job_duration_seconds_bucket[{RI}])))",
                "p50 {{status}}",
            ),
            (
                _p95("asya_gateway_job_duration_seconds", "", "status, le"),
                "p95 {{status}}",
            ),
        ],
        "From job creation to its final report, by final status.",
    ),
    (
        "Throughput per actor",
        "ops",
        [
            (
                f"sum by (actor) (rate(asya_sidecar_messages_processed_total{{{A}}}[{RI}]))",
                "{{actor}}",
            )
        ],
        "Envelopes finished per second per actor (every outcome).",
    ),
    (
        "Hop latency per actor (p95)",
        "s",
        [(_p95("asya_sidecar_hop_seconds", A), "{{actor}}")],
        "Receive to acknowledgement (handler plus publishes), 95th percentile.",
    ),
    (
        "Errors by code",
        "ops",
        [
            (
                f"sum by (actor, code) (rate(asya_sidecar_runtime_errors_total{{{A}}}[{RI}]))",
                "{{actor}} {{code}}",
            )
        ],
        "Error results per second by actor and ErrorCode.",
    ),
    (
        "Dead letters",
        "short",
        [
            (
                'sum(rabbitmq_queue_messages{queue="${queue_prefix}dlq"})',
                "asya-dlq depth",
            ),
            (
                f"sum by (reason) (increase(asya_crew_dead_letters_total[{RI}]))",
                "new {{reason}}",
            ),
        ],
        "Messages waiting in asya-dlq (RabbitMQ) and envelopes dead-lettered per interval by reason.",
    ),
    (
        "Replicas against queue depth",
        "short",
        [
            (
                'sum by (queue) (rabbitmq_queue_messages{queue=~"${queue_prefix}($actor)"})',
                "queue {{queue}}",
            ),
            (
                'sum by (deployment) (kube_deployment_status_replicas{deployment=~"$actor"})',
                "replicas {{deployment}}",
            ),
        ],
        (
            "Messages in each actor queue beside its Deployment's replicas (kube-state-metrics): "
            "a deep queue with flat replicas means scaling is capped or broken."
        ),
    ),
    (
        "In-flight envelopes",
        "short",
        [(f"sum by (actor) (asya_sidecar_inflight_messages{{{A}}})", "{{actor}}")],
        "Envelopes being processed right now per actor.",
    ),
    (
        "Retries scheduled",
        "ops",
        [
            (
                f"sum by (actor) (rate(asya_crew_retries_scheduled_total{{{A}}}[{RI}]))",
                "{{actor}}",
            )
        ],
        "Failed envelopes sent back to their actor with a delay (error-end), per second.",
    ),
]

ACTOR: list[Panel] = [
    (
        "Where the time goes (mean per envelope)",
        "s",
        [
            (_mean("asya_sidecar_queue_wait_seconds"), "queue wait"),
            (_mean("asya_sidecar_processing_seconds"), "handler (runtime round trip)"),
            (
                f"{_mean('asya_sidecar_hop_seconds')} - {_mean('asya_sidecar_processing_seconds')}",
                "sidecar overhead (hop - handler)",
            ),
        ],
        (
            "Queue wait (publish to take), the runtime round trip, and what the sidecar adds on top "
            "(publishes, acknowledgement) per envelope."
        ),
    ),
    (
        "Queue wait vs handler time (p95)",
        "s",
        [
            (_p95("asya_sidecar_queue_wait_seconds", S), "queue wait p95"),
            (_p95("asya_sidecar_processing_seconds", S), "handler p95"),
            (_p95("asya_sidecar_hop_seconds", S), "hop p95"),
        ],
        "Tail latencies of the same three times.",
    ),
    (
        "Outcomes",
        "ops",
        [
            (
                f"sum by (outcome) (rate(asya_sidecar_messages_processed_total{{{S}}}[{RI}]))",
                "{{outcome}}",
            )
        ],
        "Envelopes finished per second by outcome (success, error, requeued, ...).",
    ),
    (
        "Error types",
        "ops",
        [
            (
                f"sum by (code) (rate(asya_sidecar_runtime_errors_total{{{S}}}[{RI}]))",
                "{{code}}",
            )
        ],
        "Error results per second by ErrorCode.",
    ),
    (
        "Runtime restarts",
        "short",
        [
            (
                f"sum(increase(asya_sidecar_runtime_restarts_total{{{S}}}[{RI}]))",
                "restarts",
            )
        ],
        "Runtime processes replaced after the connection was lost (crash, OOM kill). Repeated restarts: crash loop.",
    ),
    (
        "Retries scheduled and dead letters",
        "ops",
        [
            (
                f"sum(rate(asya_crew_retries_scheduled_total{{{S}}}[{RI}]))",
                "retries scheduled",
            ),
            (
                f"sum by (reason) (rate(asya_crew_dead_letters_total{{{S}}}[{RI}]))",
                "dead letters {{reason}}",
            ),
        ],
        "What error-end did with this actor's failures: retried later, or dead-lettered by reason.",
    ),
    (
        "Queue depth and in-flight",
        "short",
        [
            (
                'sum(rabbitmq_queue_messages_ready{queue="${queue_prefix}$actor"})',
                "ready",
            ),
            (
                'sum(rabbitmq_queue_messages_unacked{queue="${queue_prefix}$actor"})',
                "unacked",
            ),
            (f"sum(asya_sidecar_inflight_messages{{{S}}})", "in flight (sidecars)"),
        ],
        "Messages waiting in the actor's queue, delivered but unacknowledged, and being processed.",
    ),
    (
        "Gateway reports",
        "short",
        [
            (f"sum(asya_reports_pending{{{S}}})", "pending"),
            (
                f"sum by (kind) (increase(asya_reports_sent_total{{{S}}}[{RI}]))",
                "sent {{kind}}",
            ),
        ],
        "Reports waiting to be posted to the gateway (backlog) and reports accepted per interval.",
    ),
]

DASHBOARDS: dict[str, dict[str, Any]] = {
    "asya-overview.json": _dashboard(
        "asya-overview",
        "Asya / Overview",
        "Jobs, throughput, latency, errors, dead letters and scaling of every actor.",
        OVERVIEW,
        multi=True,
    ),
    "asya-actor.json": _dashboard(
        "asya-actor",
        "Asya / Actor",
        "One actor: where the time goes, errors, restarts, retries.",
        ACTOR,
        multi=False,
    ),
}


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2) + "\n"


def main() -> None:
    for name, model in DASHBOARDS.items():
        (HERE / name).write_text(render(model))
        sys.stdout.write(f"wrote dashboards/{name}\n")


if __name__ == "__main__":
    main()
