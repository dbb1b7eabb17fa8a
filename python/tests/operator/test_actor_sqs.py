"""An actor on the SQS transport (ElasticMQ): queue provisioned, aws-sqs-queue scaler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import actorfactory as af
import boto3
import controlplane
import pytest
from actorfactory import OperatorProcess, new_namespace, wait_for
from kubernetes import client

pytestmark = [pytest.mark.kube, pytest.mark.sqs, pytest.mark.timeout(120)]


def test_sqs_actor_gets_its_queue_and_scaler(
    kube: controlplane.ControlPlane, api: Any, start_operator: Callable[..., OperatorProcess], sqs_server: Any
) -> None:
    ns = new_namespace(kube, "asya-s")
    kube.kubectl(
        "create", "secret", "generic", "aws", "-n", ns,
        f"--from-literal=id={sqs_server.access_key_id}", f"--from-literal=key={sqs_server.secret_access_key}",
    )  # fmt: skip
    transport = {
        "type": "sqs",
        "endpoint": sqs_server.url,
        "region": sqs_server.region,
        "credentialsSecret": {"name": "aws", "accessKeyIdKey": "id", "secretAccessKeyKey": "key"},
    }
    start_operator(
        ns,
        transports={"sqs": transport},
        AWS_ACCESS_KEY_ID=sqs_server.access_key_id,
        AWS_SECRET_ACCESS_KEY=sqs_server.secret_access_key,
        AWS_REGION=sqs_server.region,
    )
    af.create(api, ns, af.actor_body("squid", transport="sqs", scaling={"enabled": True, "maxReplicas": 3}))
    actor = wait_for(
        lambda: af.condition(a := af.get(api, ns, "squid"), "QueueReady").get("status") == "True" and a,
        timeout_s=60,
        what="queue on SQS",
    )
    assert actor["status"]["transportType"] == "sqs" and actor["status"]["queueDepth"] == 0
    sqs = boto3.client(
        "sqs",
        endpoint_url=sqs_server.url,
        region_name=sqs_server.region,
        aws_access_key_id=sqs_server.access_key_id,
        aws_secret_access_key=sqs_server.secret_access_key,
    )
    urls = sqs.list_queues().get("QueueUrls", [])
    assert any(u.endswith("/asya-squid") for u in urls), urls
    so = wait_for(
        lambda: client.CustomObjectsApi(api).get_namespaced_custom_object(
            "keda.sh", "v1alpha1", ns, "scaledobjects", "squid"
        ),
        what="ScaledObject",
    )
    trig = so["spec"]["triggers"][0]
    assert trig["type"] == "aws-sqs-queue"
    assert trig["metadata"]["awsEndpoint"] == sqs_server.url and trig["metadata"]["queueURL"] == "asya-squid"
    dep = client.AppsV1Api(api).read_namespaced_deployment("squid", ns)
    env = {e.name: e for e in dep.spec.template.spec.containers[1].env}
    assert env["ASYA_TRANSPORT"].value == "sqs" and env["ASYA_TRANSPORT_URL"].value == sqs_server.url
    assert env["AWS_ACCESS_KEY_ID"].value_from.secret_key_ref.name == "aws"
    assert env["AWS_SECRET_ACCESS_KEY"].value is None
