"""Gateway refusals become exceptions that carry the gateway's words: 401, 404, 422 with its field, 503."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fixtures.gateway_threads import CLIENT_TOKEN, REPORT_TOKEN, ThreadedGateway
from fixtures.rabbitmq import RabbitMQServer
from support.procs import free_port

from asya import client
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(60)


def test_a_wrong_missing_or_report_token_is_unauthorized(threaded_gateway: ThreadedGateway) -> None:
    for token in ("wrong", "", REPORT_TOKEN):
        with client.Client(threaded_gateway.url, token) as c, pytest.raises(client.UnauthorizedError) as info:
            c.list()
        assert info.value.status == 401
        assert "bearer token" in info.value.message


def test_an_unknown_job_is_not_found_for_get_cancel_and_watch(threaded_gateway: ThreadedGateway) -> None:
    with client.Client(threaded_gateway.url, CLIENT_TOKEN) as c:
        for call in (c.get, c.cancel, lambda i: next(c.watch(i))):
            with pytest.raises(client.NotFoundError) as info:
                call("no-such-job")
            assert info.value.status == 404 and "no-such-job" in info.value.message


def test_a_bad_request_names_the_field(threaded_gateway: ThreadedGateway) -> None:
    with client.Client(threaded_gateway.url, CLIENT_TOKEN) as c:
        with pytest.raises(client.InvalidRequestError) as info:
            c.submit(["prep", "Not An Actor"], {"n": 1})
        assert info.value.status == 422
        assert info.value.field == "route.actors[1]"
        assert "route.actors[1]" in str(info.value) and "Not An Actor" in info.value.message
        with pytest.raises(client.InvalidRequestError) as info:
            c.list(status="sleeping")
        assert info.value.field == "status"


def test_an_unreachable_gateway_is_a_connection_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with client.Client(url, CLIENT_TOKEN, timeout_s=2) as c, pytest.raises(client.ConnectionFailedError) as info:
        c.get("x")
    assert url in str(info.value)


@pytest.fixture
def rabbit_gateway(gateway_db: str, rabbitmq_server: RabbitMQServer) -> Iterator[ThreadedGateway]:
    gw = ThreadedGateway(gateway_db, TransportSettings(kind="rabbitmq", url=rabbitmq_server.url)).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.mark.rabbitmq
def test_a_publish_the_broker_refuses_is_unavailable_and_stores_nothing(rabbit_gateway: ThreadedGateway) -> None:
    missing = f"nobody-{uuid.uuid4().hex[:8]}"
    with client.Client(rabbit_gateway.url, CLIENT_TOKEN) as c:
        with pytest.raises(client.UnavailableError) as info:
            c.submit([missing], {"n": 1})
        assert info.value.status == 503 and f"asya-{missing}" in info.value.message
        assert c.list().jobs == []
