"""End to end: a job submitted over REST runs through real sidecar + runtime processes and the crew.

The sidecars and end actors are the real ``python -m asya.sidecar`` /
``python -m asya.crew`` processes with ``ASYA_GATEWAY_URL`` pointing at the
gateway and ``ASYA_GATEWAY_TOKEN`` set to its report token, so this also
proves the reporter's contract and its bearer header against the real gateway.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from gateway_helpers import REPORT_TOKEN, Event, RunningGateway, stream
from support.procs import Proc, base_env, start_runtime, start_sidecar

from asya.transports import TransportSettings

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def start_pipeline(
    gateway: RunningGateway, transport: TransportSettings, tmp: Path, procs: list[Proc], actors: dict[str, str]
) -> None:
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    transport_env = {"ASYA_TRANSPORT": "local", "ASYA_TRANSPORT_URL": transport.url}
    report_env = {"ASYA_GATEWAY_URL": gateway.url, "ASYA_GATEWAY_TOKEN": REPORT_TOKEN}
    for actor, handler in actors.items():
        sock = tmp / f"sock-{actor}"
        sock.mkdir()
        procs.append(start_runtime(handler, sock, logs, ASYA_ACTOR=actor))
        procs.append(start_sidecar(actor, sock, logs, transport_env, ASYA_PROCESSING_TIMEOUT_S=30, **report_env))
    crew_env = {
        **transport_env,
        **report_env,
        "ASYA_STORAGE_URL": (tmp / "store").as_uri(),
        "ASYA_RETRY_MAX_ATTEMPTS": "2",
        "ASYA_RETRY_BACKOFF_BASE_S": "0.05",
        "ASYA_RETRY_BACKOFF_MAX_S": "0.2",
    }
    for end in ("happy-end", "error-end"):
        procs.append(Proc([sys.executable, "-m", "asya.crew", end], base_env(**crew_env), logs / f"{end}.log"))


def logs_text(procs: list[Proc]) -> str:
    return "\n".join(f"--- {p.log_path.name}\n{p.log()[-2000:]}" for p in procs)


async def follow(gateway: RunningGateway, job_id: str, procs: list[Proc]) -> list[Event]:
    async with gateway.client() as c, stream(c, job_id) as s:
        try:
            return await s.rest(timeout=60)
        except TimeoutError:
            raise AssertionError("no final event within 60 s\n" + logs_text(procs)) from None


async def test_a_submitted_job_runs_through_real_actors_and_streams_to_its_result(
    gateway: RunningGateway, local_transport: TransportSettings, tmp_path: Path, procs: list[Proc]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    first, second, broken = f"prep-{suffix}", f"infer-{suffix}", f"broken-{suffix}"
    handlers = {first: "support.handlers.add_one", second: "support.handlers.add_one", broken: "support.handlers.boom"}
    start_pipeline(gateway, local_transport, tmp_path, procs, handlers)
    async with gateway.client() as c:
        ok = (await c.post("/jobs", json={"route": {"actors": [first, second]}, "payload": {"n": 1}})).json()
        bad = (await c.post("/jobs", json={"route": {"actors": [broken]}, "payload": {"n": 1}})).json()
    events = await follow(gateway, ok["id"], procs)
    assert [e.kind for e in events] == ["created", "progress", "progress", "final"], events
    assert [e.data["actor"] for e in events[1:3]] == [first, second]
    assert events[-1].data["status"] == "succeeded"
    assert events[-1].data["result"] == {"n": 3, "trail": [first, second]}
    failed = await follow(gateway, bad["id"], procs)
    kinds = [e.kind for e in failed]
    assert kinds[0] == "created" and kinds[-1] == "final" and "retrying" in kinds, kinds
    assert failed[-1].data["status"] == "failed"
    async with gateway.client() as c:
        job = (await c.get(f"/jobs/{ok['id']}")).json()
        assert job["status"] == "succeeded" and job["result"]["n"] == 3
        assert (await c.get(f"/jobs/{bad['id']}")).json()["status"] == "failed"
