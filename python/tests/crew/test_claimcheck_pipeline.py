"""A 1 MiB payload crosses 3 actors on SQS (256 KiB limit) by claim check, and is stored whole."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from crew_pipeline import PipelineRun
from fixtures.s3 import S3Server
from fixtures.sqs import SQSServer

from asya import storage, transports
from asya.contracts.envelope import encode_envelope, queue_name
from asya.storage import claimcheck
from asya.storage.settings import S3Settings

SIZE = 1024 * 1024

pytestmark = [
    pytest.mark.sqs,
    pytest.mark.s3,
    pytest.mark.timeout(180),
]


async def test_one_mebibyte_payload_across_three_hops_on_sqs(
    tmp_path: Path, sqs_server: SQSServer, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**sqs_server.env(), **s3_server.env()}.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    # one bucket for everything, as deployed: blobs/ from the sidecars, results and errors/ from the crew
    url = f"s3://asya-cc-{uuid.uuid4().hex[:8]}/run"
    env = {**sqs_server.env(), **s3_server.env(), "ASYA_STORAGE_URL": url}
    run = PipelineRun(tmp_path, env, url)
    store = storage.create_store(url, S3Settings(s3_server.url, s3_server.access_key_id, s3_server.secret_access_key))
    t = transports.create(transports.TransportSettings(kind="sqs", url=sqs_server.url))
    await t.connect()

    async def outcome() -> list[str]:
        return [k for k in await store.list_keys("") if k.endswith("/big-1.json")]

    try:
        actors = [run.actor(n) for n in ("a", "b", "c")]
        for actor in [*actors, "happy-end", "error-end"]:
            await t.ensure_queue(queue_name(actor))
        run.start_crew()
        for actor in actors:
            run.start_actor(actor, "crew.faulty_handlers.grow")
        envelope = {
            "id": "big-1",
            "route": {"actors": actors, "current": 0},
            "headers": {},
            "payload": {"blob": "b" * SIZE, "size": SIZE},
        }
        # what a gateway does for a big input: offload before publishing
        await t.publish(queue_name(actors[0]), encode_envelope(await claimcheck.offload(envelope, store)))
        deadline = asyncio.get_running_loop().time() + 120
        while not (keys := await outcome()):
            assert asyncio.get_running_loop().time() < deadline, run.logs_text()
            await asyncio.sleep(0.2)
        [key] = keys
        result = json.loads(await store.get(key))
    finally:
        run.stop()
        await t.close()
        await store.close()
    assert not key.startswith("errors/"), result["payload"]
    assert result["payload"]["hops"] == 3
    assert result["payload"]["blob"] == "b" * SIZE
