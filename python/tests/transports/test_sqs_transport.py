"""The ``sqs`` transport against real ElasticMQ: the shared contracts, plus SQS specifics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import time

import botocore.exceptions
import pytest
from fixtures.sqs import SQSServer
from transports.contract import (
    DEADLINE_S,
    LEASE_S,
    AckNackContract,
    ConcurrencyContract,
    DelayContract,
    DurabilityContract,
    PublishConsumeContract,
    RedeliveryContract,
    TransportContract,
    next_delivery,
    take,
)

from asya import transports
from asya.contracts.errors import PermanentError, TransportError
from asya.transports import TransportSettings
from asya.transports import sqs as sqs_transport

pytestmark = [pytest.mark.sqs, pytest.mark.timeout(90)]


class SQSConfig:
    """Config mixin: the session's ElasticMQ, short leases, short long-polls."""

    @pytest.fixture(autouse=True)
    def _sqs(self, sqs_server: SQSServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = sqs_server
        for key, value in sqs_server.env().items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)

    server: SQSServer | None = None

    def settings(self) -> TransportSettings:
        # also called before our fixture runs (DelayContract reads supports_delay): build-only is fine then
        server = self.server or SQSServer(url="http://127.0.0.1:9")
        return TransportSettings(
            kind="sqs",
            url=server.url,
            region=server.region,
            visibility_timeout_s=LEASE_S,
            options={"wait_time_s": "2"},
        )


class TestSQSPublishConsume(SQSConfig, PublishConsumeContract): ...


class TestSQSAckNack(SQSConfig, AckNackContract): ...


class TestSQSRedelivery(SQSConfig, RedeliveryContract): ...


class TestSQSDelay(SQSConfig, DelayContract): ...


class TestSQSDurability(SQSConfig, DurabilityContract): ...


class TestSQSConcurrency(SQSConfig, ConcurrencyContract): ...


class TestSQSSpecifics(SQSConfig, TransportContract):
    async def test_extend_keeps_a_long_handler_s_lease(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        await t.publish(q, b"slow")
        it = self.consume(t, q)
        d = await next_delivery(it)
        deadline = time.monotonic() + 3 * LEASE_S
        while time.monotonic() < deadline:  # a handler working well past the lease
            await d.extend(LEASE_S)
            await asyncio.sleep(LEASE_S / 3)
        other = await self.make_transport()
        assert await other.queue_depth(q) == 0, "the message became visible while still leased"
        await d.ack()

    async def test_fractional_delay_is_honoured_not_rounded_down(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        start = time.monotonic()
        await t.publish(q, b"x", delay_s=1.4)
        d = await next_delivery(self.consume(t, q))
        assert time.monotonic() - start >= 1.4
        await d.ack()

    async def test_oversized_message_is_refused_before_sending(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        with pytest.raises(PermanentError, match="claim check"):
            await t.publish(q, b"x" * (sqs_transport.MAX_MESSAGE_BYTES + 1))
        await t.publish(q, b"x" * (sqs_transport.MAX_MESSAGE_BYTES - 1024))
        [d] = await take(self.consume(t, q), 1)
        assert len(d.body) == sqs_transport.MAX_MESSAGE_BYTES - 1024

    async def test_queue_gets_a_redrive_policy_to_its_own_dlq(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        assert isinstance(t, sqs_transport.SQSTransport)
        attrs = await t._call(
            t._client.get_queue_attributes, QueueUrl=await t._url(q), AttributeNames=["RedrivePolicy"]
        )
        policy = json.loads(attrs["Attributes"]["RedrivePolicy"])
        assert policy["deadLetterTargetArn"].endswith(f":{q}-dlq")
        assert int(policy["maxReceiveCount"]) == 10

    async def test_crew_queues_get_no_redrive(self) -> None:
        t = await self.make_transport()
        assert isinstance(t, sqs_transport.SQSTransport)
        await t.ensure_queue("asya-happy-end")
        attrs = await t._call(
            t._client.get_queue_attributes, QueueUrl=await t._url("asya-happy-end"), AttributeNames=["All"]
        )
        assert "RedrivePolicy" not in attrs["Attributes"]

    async def test_close_returns_unsettled_deliveries_at_once(self) -> None:
        t1 = await self.make_transport()
        q = await self.new_queue(t1)
        await t1.publish(q, b"held")
        await next_delivery(self.consume(t1, q))
        start = time.monotonic()
        await t1.close()
        t2 = await self.make_transport()
        d = await next_delivery(self.consume(t2, q), DEADLINE_S)
        assert d.attempt == 2
        assert time.monotonic() - start < LEASE_S  # released, not timed out
        await d.ack()


class TestSQSFailures(SQSConfig, TransportContract):
    async def test_an_unreachable_server_is_a_transport_error_on_every_operation(self) -> None:
        with socket.socket() as s:  # a port nobody listens on: the server is down
            s.bind(("127.0.0.1", 0))
            dead = f"http://{s.getsockname()[0]}:{s.getsockname()[1]}"
        t = transports.create(dataclasses.replace(self.settings(), url=dead))
        await t.connect()
        try:
            for name, op in [
                ("publish", lambda: t.publish("asya-test-down", b"x")),
                ("ensure_queue", lambda: t.ensure_queue("asya-test-down")),
                ("delete_queue", lambda: t.delete_queue("asya-test-down")),
                ("queue_depth", lambda: t.queue_depth("asya-test-down")),
                ("consume", lambda: anext(t.consume("asya-test-down", prefetch=1))),
            ]:
                with pytest.raises(TransportError) as info:
                    await op()
                assert isinstance(info.value.__cause__, botocore.exceptions.BotoCoreError), name
        finally:
            await t.close()

    async def test_settling_on_a_deleted_queue_is_a_transport_error(self) -> None:
        t = await self.make_transport()
        q = await self.new_queue(t)
        for body in (b"a", b"b"):
            await t.publish(q, body)
        it = self.consume(t, q)
        first, second = await next_delivery(it), await next_delivery(it)
        await t.delete_queue(q)  # SQS now refuses anything about these messages
        with pytest.raises(TransportError) as info:
            await first.extend(LEASE_S)
        assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)
        with pytest.raises(TransportError):
            await first.ack()
        with pytest.raises(TransportError):
            await second.nack(requeue=True)

    async def test_unreadable_headers_are_dropped_with_one_warning_naming_the_message(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="asya.transports.sqs")
        t = await self.make_transport()
        q = await self.new_queue(t)
        assert isinstance(t, sqs_transport.SQSTransport)
        sent = await t._call(  # another publisher's message, with a headers attribute that is no JSON object
            t._client.send_message,
            QueueUrl=await t._url(q),
            MessageBody="body",
            MessageAttributes={"asya-headers": {"DataType": "String", "StringValue": "[1, 2"}},
        )
        d = await next_delivery(self.consume(t, q))
        assert (d.body, d.headers, d.message_id) == (b"body", {}, sent["MessageId"])
        await d.ack()
        ours = [r for r in caplog.records if r.name == "asya.transports.sqs" and r.levelno == logging.WARNING]
        assert len(ours) == 1 and sent["MessageId"] in ours[0].getMessage(), [r.getMessage() for r in ours]
        assert "asya-headers" in ours[0].getMessage()


def test_bodies_sqs_cannot_carry_are_base64_with_a_marker() -> None:
    for body in [b"", b"\x00\x01", bytes(range(256)), "ok \u00e9".encode(), b'{"id":"x"}']:
        text, attrs = sqs_transport.encode_message(body, {"h": {"n": 1}})
        assert text
        assert sqs_transport.decode_message(text, attrs) == (body, {"h": {"n": 1}})
    text, attrs = sqs_transport.encode_message(b'{"id":"x"}', None)
    assert text == '{"id":"x"}' and attrs == {}
