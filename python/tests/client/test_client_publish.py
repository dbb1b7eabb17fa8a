"""``asya.client.publish`` on a real RabbitMQ: confirmed, under the transport's names, and never a silent drop."""

from __future__ import annotations

import uuid

import pytest
from fixtures.rabbitmq import RabbitMQServer
from fixtures.rabbitmq_queues import bounded_queue, drain, ensure, envelope
from support.procs import free_port

from asya import client
from asya.contracts import EnvelopeError

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(60)]


def actor() -> str:
    return f"pub-{uuid.uuid4().hex[:8]}"


def test_a_batch_arrives_in_order_on_the_actor_queue_the_transport_consumes(rabbitmq_server: RabbitMQServer) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    sent = [envelope(i, (name, "next")) for i in range(3)]
    assert client.publish(name, sent, url=rabbitmq_server.url) == 3
    assert client.publish(f"asya-{name}", envelope(9, (name,)), url=rabbitmq_server.url) == 1  # queue name form
    assert drain(rabbitmq_server.url, name, 4) == [*sent, envelope(9, (name,))]


def test_a_misspelt_queue_raises_naming_it_and_nothing_lands_anywhere(rabbitmq_server: RabbitMQServer) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    with pytest.raises(client.UnroutableError) as info:
        client.publish(name + "x", [envelope(1), envelope(2)], url=rabbitmq_server.url)
    assert info.value.queue == f"asya-{name}x" and info.value.confirmed == 0
    assert f"'asya-{name}x'" in str(info.value) and "not stored" in str(info.value)
    assert drain(rabbitmq_server.url, name, 0) == []


def test_a_bad_envelope_anywhere_in_a_batch_sends_none(rabbitmq_server: RabbitMQServer) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    batch = [envelope(0), {"id": "x", "route": {"actors": ["Bad Name"], "current": 0}, "payload": 1}, envelope(2)]
    with pytest.raises(EnvelopeError) as info:
        client.publish(name, batch, url=rabbitmq_server.url)
    assert info.value.field.startswith("[1].route")
    assert drain(rabbitmq_server.url, name, 0) == []


def test_the_queue_prefix_option_is_honoured_like_the_transport(
    rabbitmq_server: RabbitMQServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name, prefix="")  # the onboarding guide's "queue name = actor name"
    monkeypatch.setenv("ASYA_TRANSPORT_OPT_QUEUE_PREFIX", "")
    monkeypatch.setenv("ASYA_TRANSPORT_URL", rabbitmq_server.url)
    assert client.broker_queue(name) == name
    assert client.publish(name, envelope(1)) == 1
    assert drain(rabbitmq_server.url, name, 1, prefix="") == [envelope(1)]


def test_a_broker_refusing_mid_batch_reports_how_many_were_confirmed(rabbitmq_server: RabbitMQServer) -> None:
    name = actor()
    bounded_queue(rabbitmq_server.url, f"asya-{name}", max_length=2)
    with pytest.raises(client.PublishError) as info:
        client.publish(name, [envelope(i) for i in range(4)], url=rabbitmq_server.url)
    assert info.value.confirmed == 2 and "envelope 3" in str(info.value) and "nack" in str(info.value)


def test_an_unreachable_broker_is_an_error_without_its_credentials() -> None:
    url = f"amqp://someone:hunter2@127.0.0.1:{free_port()}/"
    with pytest.raises(client.PublishError) as info:
        client.publish("prep", envelope(1), url=url, timeout_s=3)
    assert "127.0.0.1" in str(info.value) and "hunter2" not in str(info.value) and info.value.confirmed == 0
