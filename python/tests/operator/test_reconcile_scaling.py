"""Pure: KEDA ScaledObject / TriggerAuthentication per transport (no cluster)."""

from __future__ import annotations

import actorfactory as af
import pytest

from asya.operator import config
from asya.operator.reconciling import scaling, specs


def actor() -> specs.ActorSpec:
    b = af.actor_body("echo", scaling={"enabled": True, "minReplicas": 0, "maxReplicas": 5, "queueLength": 7})
    b["metadata"].update(namespace="ns", uid="u")
    return specs.parse_actor(b)


def test_rabbitmq_uses_queue_length_and_the_url_secret() -> None:
    t = config.TransportConfig("mq", "rabbitmq", url="amqp://broker", url_secret=config.SecretKeyRef("s", "url"))
    auth, so = scaling.render_scaling(actor(), t)
    assert auth["kind"] == "TriggerAuthentication"
    assert auth["spec"] == {"secretTargetRef": [{"parameter": "host", "name": "s", "key": "url"}]}
    trig = so["spec"]["triggers"][0]
    assert trig["type"] == "rabbitmq"
    assert trig["metadata"]["mode"] == "QueueLength" and trig["metadata"]["value"] == "7"
    assert trig["metadata"]["queueName"] == "asya-echo"
    assert trig["authenticationRef"] == {"name": "echo-asya"}
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "echo"}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 5)


def test_sqs_uses_the_aws_scaler_with_key_secrets() -> None:
    t = config.TransportConfig(
        "sqs",
        "sqs",
        region="eu-west-1",
        endpoint="http://elasticmq:9324",
        access_key_secret=config.SecretKeyRef("aws", "id"),
        secret_key_secret=config.SecretKeyRef("aws", "key"),
    )
    auth, so = scaling.render_scaling(actor(), t)
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["awsAccessKeyID", "awsSecretAccessKey"]
    trig = so["spec"]["triggers"][0]
    assert trig["type"] == "aws-sqs-queue"
    assert trig["metadata"] == {
        "queueURL": "asya-echo",
        "queueLength": "7",
        "awsRegion": "eu-west-1",
        "awsEndpoint": "http://elasticmq:9324",
    }


def test_sqs_with_pod_identity() -> None:
    t = config.TransportConfig("sqs", "sqs", pod_identity="aws")
    auth, _ = scaling.render_scaling(actor(), t)
    assert auth["spec"] == {"podIdentity": {"provider": "aws"}}


def test_local_transport_cannot_scale() -> None:
    with pytest.raises(scaling.ScalingError, match="KEDA cannot scale on"):
        scaling.render_scaling(actor(), config.TransportConfig("local", "local", url="/q"))


@pytest.mark.parametrize("kind", ["rabbitmq", "sqs"])
def test_the_trigger_watches_the_brokers_name_of_the_queue(kind: str) -> None:
    t = config.TransportConfig("mq", kind, url="amqp://broker", options={"queue_prefix": ""})
    [so] = [m for m in scaling.render_scaling(actor(), t) if m["kind"] == "ScaledObject"]
    meta = so["spec"]["triggers"][0]["metadata"]
    assert meta.get("queueName", meta.get("queueURL")) == "echo", (
        "KEDA would watch asya-echo while the actor reads echo"
    )
