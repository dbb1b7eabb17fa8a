"""happy-end from the crew image, as the operator renders an end actor, on real RabbitMQ and S3."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from pathlib import Path
from typing import Any

import actorfactory as af
import boto3
import controlplane
import podrun
import pytest

from asya import transports
from asya.contracts import queue_name
from asya.operator import config
from asya.operator.reconciling import specs, workload

pytestmark = [pytest.mark.images, pytest.mark.rabbitmq, pytest.mark.s3]


async def test_happy_end_container_is_ready_and_stores_a_result(
    images: dict[str, str], rabbitmq_server: Any, s3_server: Any, pod_dir: Path, started: list[Any]
) -> None:
    bucket = f"img-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3", endpoint_url=s3_server.url, aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key, region_name=s3_server.region,
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    # a private queue prefix: the session's other tests share this broker's asya-happy-end
    options = {"queue_prefix": f"{bucket}-"}
    body = af.actor_body("happy-end", transport="rabbit")
    body["spec"]["workload"]["template"]["spec"]["containers"] = [
        {
            "name": specs.CREW_CONTAINER,
            "image": images["crew"],
            "env": [{"name": "ASYA_STORAGE_URL", "value": f"s3://{bucket}/results"}],
        }
    ]
    body["metadata"].update(namespace="ns", uid="u-1", generation=1)
    actor = specs.parse_actor(body)
    transport = config.TransportConfig(name="rabbit", type="rabbitmq", url=rabbitmq_server.url, options=options)
    pod_spec = workload.render_workload(actor, transport, config.OperatorConfig(transports={"rabbit": transport}))
    pod = podrun.Pod(pod_spec["spec"]["template"]["spec"], pod_dir, {})
    started.append(pod)
    port = controlplane.free_port()
    # the S3 endpoint and keys come from the crew chart's storage values (an existingSecret in a cluster)
    pod.start(specs.CREW_CONTAINER, images["crew"], env={**s3_server.env(), "ASYA_HTTP_PORT": str(port)})

    for probe in ("healthz", "readyz"):
        url = f"http://127.0.0.1:{port}/{probe}"
        await asyncio.to_thread(podrun.wait_for, functools.partial(podrun.answers, url), 60, url, pod.logs)

    t = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url, options=options))
    await t.connect()
    envelope = {"id": uuid.uuid4().hex, "route": {"actors": ["summarize"], "current": 1}, "payload": {"ok": True}}
    await t.publish(queue_name("happy-end"), json.dumps(envelope).encode())
    await t.close()

    def stored() -> list[str]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return [k for k in keys if k.endswith(f"/summarize/{envelope['id']}.json")]

    [key] = await asyncio.to_thread(podrun.wait_for, stored, 60, "the result object in S3", pod.logs)
    assert key.startswith("results/")
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["payload"] == {"ok": True}
