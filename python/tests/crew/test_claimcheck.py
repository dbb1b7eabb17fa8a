"""Claim check: big payloads become references into storage and come back intact."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from crew_helpers import eventually, open_transport, running, settings_for, stored
from fixtures.s3 import S3Server

from asya import storage
from asya.contracts.envelope import encode_envelope
from asya.storage import claimcheck
from asya.storage.settings import S3Settings

pytestmark = pytest.mark.timeout(60)


def _env(payload: object) -> dict[str, object]:
    return {"id": "cc", "route": {"actors": ["a"], "current": 0}, "headers": {"h": 1}, "payload": payload}


async def _round_trip(store: storage.ObjectStore) -> None:
    big = {"text": "x" * (1024 * 1024), "n": 1}
    env = _env(big)
    out = await claimcheck.offload(env, store)
    ref = claimcheck.reference(out["payload"])
    assert ref is not None and ref["bytes"] > 1024 * 1024
    assert len(encode_envelope(out)) < 1024
    assert {k: v for k, v in out.items() if k != "payload"} == {k: v for k, v in env.items() if k != "payload"}
    assert await claimcheck.offload(out, store) is out  # already a reference: untouched
    back = await claimcheck.resolve(out, store)
    assert back == env
    small = _env({"text": "short"})
    assert await claimcheck.offload(small, store) is small
    assert await claimcheck.resolve(small, store) is small


async def test_offload_and_resolve_on_a_folder(tmp_path: Path) -> None:
    await _round_trip(storage.FileStore(tmp_path))


@pytest.mark.s3
async def test_offload_and_resolve_on_s3(s3_server: S3Server) -> None:
    s3 = S3Settings(s3_server.url, s3_server.access_key_id, s3_server.secret_access_key, s3_server.region)
    store = storage.create_store(f"s3://asya-cc-{uuid.uuid4().hex[:8]}/x", s3)
    try:
        await _round_trip(store)
    finally:
        await store.close()


async def test_identical_payloads_share_one_object(tmp_path: Path) -> None:
    store = storage.FileStore(tmp_path)
    a = await claimcheck.offload(_env("y" * 300_000), store)
    b = await claimcheck.offload({**_env("y" * 300_000), "id": "other"}, store)
    assert a["payload"] == b["payload"]
    assert len(await store.list_keys("blobs/")) == 1


async def test_tampered_or_missing_objects_are_refused(tmp_path: Path) -> None:
    store = storage.FileStore(tmp_path / "s")
    out = await claimcheck.offload(_env("z" * 300_000), store)
    key = store.key_of(claimcheck.reference(out["payload"])["uri"])  # type: ignore[index]
    await store.put(key, json.dumps("tampered").encode())
    with pytest.raises(claimcheck.ClaimCheckError, match="sha256"):
        await claimcheck.resolve(out, store)
    await store.delete(key)
    with pytest.raises(claimcheck.ClaimCheckError, match="gone"):
        await claimcheck.resolve(out, store)
    elsewhere = {**out, "payload": {"$asya_ref": {"uri": "s3://other/bucket.json", "bytes": 1}}}
    with pytest.raises(claimcheck.ClaimCheckError, match="not in the configured store"):
        await claimcheck.resolve(elsewhere, store)


async def test_happy_end_stores_the_resolved_payload(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = storage.create_store(settings.storage_url)
    big = ["w" * 1000] * 400
    env = await claimcheck.offload({**_env(big), "route": {"actors": ["a"], "current": 1}}, store)
    t = await open_transport(settings)
    try:
        async with running("happy-end", dataclasses.replace(settings)):
            await t.publish("asya-happy-end", encode_envelope(env))
            [result] = await eventually(lambda: stored(tmp_path / "store"), what="stored result")
        assert json.loads(result.read_bytes())["payload"] == big
    finally:
        await t.close()


async def test_error_messages_offload_the_original_payload(tmp_path: Path) -> None:
    store = storage.FileStore(tmp_path)
    big = {"text": "e" * 400_000}
    msg = {
        **_env({"error": "processing_error", "details": {"message": "m"}, "original_payload": big}),
        "route": {"actors": ["a"], "current": 0},
    }
    out = await claimcheck.offload(msg, store)
    assert out["payload"]["error"] == "processing_error"
    assert claimcheck.reference(out["payload"]["original_payload"]) is not None
    assert len(encode_envelope(out)) < 2048
    # error-end retries with the reference as payload; the actor's sidecar resolves it
    retry = {**out, "payload": out["payload"]["original_payload"]}
    assert (await claimcheck.resolve(retry, store))["payload"] == big
