"""The gateway's GET /metrics: jobs created, finished by status, in the store by status, end-to-end latency."""

from __future__ import annotations

from typing import Any

from gateway_helpers import RunningGateway
from prometheus_client.parser import text_string_to_metric_families

from asya.contracts import metrics as names

BODY: dict[str, Any] = {"route": {"actors": ["prep"]}, "payload": {"text": "hi"}}


async def scrape(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with gw.client(None) as c:  # Prometheus presents no token
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


async def test_metrics_follow_jobs_from_creation_to_their_final_report(gateway: RunningGateway) -> None:
    before = await scrape(gateway)
    async with gateway.client() as c:
        ids = [(await c.post("/jobs", json=BODY)).json()["id"] for _ in range(3)]
    async with gateway.reporter() as r:
        ok = await r.post(f"/jobs/{ids[0]}/final", json={"id": ids[0], "status": "succeeded", "result": 1})
        bad = await r.post(f"/jobs/{ids[1]}/final", json={"id": ids[1], "status": "failed", "reason": "x"})
        again = await r.post(f"/jobs/{ids[0]}/final", json={"id": ids[0], "status": "succeeded", "result": 1})
        assert {ok.status_code, bad.status_code, again.status_code} <= {200, 201, 202}
    after = await scrape(gateway)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew(names.GATEWAY_JOBS_CREATED, tool="route") == 3
    assert grew(names.GATEWAY_JOBS_FINISHED, status="succeeded") == 1, "a repeated final report counts once"
    assert grew(names.GATEWAY_JOBS_FINISHED, status="failed") == 1
    assert grew(names.GATEWAY_JOB_DURATION_SECONDS + "_count", status="succeeded") == 1
    assert after[(names.GATEWAY_JOBS, (("status", "queued"),))] >= 1, "the third job is still queued"
    assert after[(names.GATEWAY_JOBS, (("status", "succeeded"),))] >= 1
    assert not any("id" in dict(labels) for _, labels in after), "no job id in a label"
