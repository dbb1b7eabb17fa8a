"""``queue_prefix`` on the local and SQS transports (RabbitMQ: ``test_rabbitmq_topology.py``).

SQS maps canonical names like RabbitMQ does (other tools see those queues);
the local transport accepts the option and keeps canonical names (its queues
are private to Asya, and ``asya dev run`` counts them by canonical name).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid

import boto3
import botocore.exceptions
import pytest
from transports.contract import AckNackContract, PublishConsumeContract, TransportContract, next_delivery
from transports.test_local_transport import LocalConfig
from transports.test_sqs_transport import SQSConfig

from asya.transports import TransportSettings
from asya.transports.local import DB_FILE


def _unprefixed(settings: TransportSettings) -> TransportSettings:
    return dataclasses.replace(settings, options={**settings.options, "queue_prefix": ""})


class LocalPrefixConfig(LocalConfig):
    def settings(self) -> TransportSettings:
        return _unprefixed(super().settings())


class TestLocalPrefixPublishConsume(LocalPrefixConfig, PublishConsumeContract): ...


class TestLocalPrefix(LocalPrefixConfig, TransportContract):
    async def test_the_option_is_accepted_and_names_stay_canonical(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"x")
        assert self.settings().broker_queue(q) == q
        db = sqlite3.connect(self.queue_dir / DB_FILE)
        try:
            assert db.execute("SELECT DISTINCT queue FROM messages").fetchall() == [(q,)]
        finally:
            db.close()
        assert (await next_delivery(self.consume(t, q))).body == b"x"


class SQSPrefixConfig(SQSConfig):
    def settings(self) -> TransportSettings:
        return _unprefixed(super().settings())


@pytest.mark.sqs
class TestSQSPrefixPublishConsume(SQSPrefixConfig, PublishConsumeContract): ...


@pytest.mark.sqs
class TestSQSPrefixAckNack(SQSPrefixConfig, AckNackContract): ...


@pytest.mark.sqs
class TestSQSPrefix(SQSPrefixConfig, TransportContract):
    async def test_queues_are_named_without_asya_on_sqs(self) -> None:
        t = await self.make_transport()
        actor = f"pfx-{uuid.uuid4().hex[:10]}"
        self._queues.append(f"asya-{actor}")
        await t.ensure_queue(f"asya-{actor}")
        assert self.server is not None
        sqs = boto3.client("sqs", endpoint_url=self.server.url, region_name=self.server.region)
        url = sqs.get_queue_url(QueueName=actor)["QueueUrl"]  # what a script written from the guide asks for
        sqs.get_queue_url(QueueName=f"{actor}-dlq")  # the redrive queue follows
        with pytest.raises(botocore.exceptions.ClientError):
            sqs.get_queue_url(QueueName=f"asya-{actor}")
        sqs.send_message(QueueUrl=url, MessageBody='{"from": "a script"}')
        d = await next_delivery(self.consume(t, f"asya-{actor}"))
        assert (d.body, d.queue) == (b'{"from": "a script"}', f"asya-{actor}")
        await d.ack()
