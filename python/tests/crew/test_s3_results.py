"""happy-end on real S3 (SeaweedFS, SigV4 checked): layout, bucket creation, S3 outages."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from crew_helpers import drained, eventually, open_transport, running, settings_for
from fixtures.s3 import S3Server

from asya.contracts.envelope import encode_envelope
from asya.storage import utc_day
from asya.storage.settings import S3Settings

pytestmark = [pytest.mark.s3, pytest.mark.timeout(120)]


def _s3_settings(server: S3Server) -> S3Settings:
    return S3Settings(server.url, server.access_key_id, server.secret_access_key, server.region)


def _client(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name=server.region,
    )


def _keys(server: S3Server, bucket: str) -> list[str]:
    """Every key in ``bucket``; a bucket not created yet holds none, any other listing error raises.

    Swallowing errors here would let "nothing was stored" pass on an unreachable or refusing server.
    """
    try:
        resp = _client(server).list_objects_v2(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return []
        raise
    assert not resp.get("IsTruncated"), "more keys than one listing page: page through them"
    return sorted(obj["Key"] for obj in resp.get("Contents", []))


async def test_result_lands_in_a_new_bucket_at_the_dated_key(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = f"asya-{uuid.uuid4().hex[:12]}"
    settings = settings_for(tmp_path, storage_url=f"s3://{bucket}/runs/prod", s3=_s3_settings(s3_server))
    env = {"id": "s3-1", "route": {"actors": ["a", "z"], "current": 2}, "headers": {"h": 1}, "payload": "ok"}
    t = await open_transport(settings)
    try:
        async with running("happy-end", settings):
            await t.publish("asya-happy-end", encode_envelope(env))
            await t.publish("asya-happy-end", encode_envelope(env))  # duplicate delivery
            keys = await eventually(lambda: _keys(s3_server, bucket), 20, what="object in S3")
            await eventually(drained(t, "asya-happy-end"), what="queue drained")
        assert keys == [f"runs/prod/{utc_day(time.time())}/z/s3-1.json"]
        body = _client(s3_server).get_object(Bucket=bucket, Key=keys[0])["Body"].read()
        assert body == encode_envelope(env)
    finally:
        await t.close()


async def test_wrong_credentials_are_refused_and_nothing_is_acked(
    tmp_path: Path, s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asya.crew.happy_end")
    bucket = f"asya-{uuid.uuid4().hex[:12]}"
    wrong = dataclasses.replace(_s3_settings(s3_server), secret_access_key="not-the-secret")
    settings = settings_for(tmp_path, storage_url=f"s3://{bucket}/p", s3=wrong)
    env = {"id": "sig", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": 0}
    t = await open_transport(settings)
    try:
        async with running("happy-end", settings):
            await t.publish("asya-happy-end", encode_envelope(env))
            # SigV4 is checked: the store is refused, and the result is kept, not acked
            await eventually(
                lambda: any(
                    "SignatureDoesNotMatch" in r.getMessage() or "Forbidden" in r.getMessage() for r in caplog.records
                ),
                20,
                what="refusal",
            )
        # happy-end holds a result it cannot store (retrying) and hands it back on shutdown: never acked
        assert await t.queue_depth("asya-happy-end") == 1, "the refused result was acknowledged"
        assert _keys(s3_server, bucket) == []
    finally:
        await t.close()


async def test_s3_outage_leaves_the_result_unacked_until_s3_is_back(
    tmp_path: Path, private_s3: Callable[[], S3Server], caplog: pytest.LogCaptureFixture
) -> None:
    server = private_s3()
    bucket = "asya-outage"
    settings = settings_for(tmp_path, storage_url=f"s3://{bucket}/r", s3=_s3_settings(server), store_retry_max_s=2.0)
    envs = [{"id": f"o-{i}", "route": {"actors": ["a"], "current": 1}, "headers": {}, "payload": i} for i in range(5)]
    t = await open_transport(settings)
    caplog.set_level(logging.WARNING, logger="asya.crew.happy_end")
    try:
        server.stop()
        async with running("happy-end", settings):
            for env in envs:
                await t.publish("asya-happy-end", encode_envelope(env))
            # every envelope fails to store at least twice while S3 is away, and stays queued
            await eventually(
                lambda: sum("could not store" in r.getMessage() for r in caplog.records) >= 2 * len(envs),
                30,
                what="repeated store failures",
            )
            server.start()
            keys = await eventually(lambda: len(_keys(server, bucket)) == len(envs) and _keys(server, bucket), 60)
            await eventually(drained(t, "asya-happy-end"), what="queue drained")
        assert [k.rsplit("/", 1)[-1] for k in keys] == [f"o-{i}.json" for i in range(5)]
    finally:
        await t.close()
