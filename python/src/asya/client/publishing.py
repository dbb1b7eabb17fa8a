"""``publish``: put envelopes straight onto an actor's RabbitMQ queue, synchronously, on pika.

For systems that inject work themselves instead of going through the gateway
("your system publishes to the first actor's queue"). Shaped so that nothing
vanishes without an error:

- every envelope is validated against the contract before the first one is
  sent, so a bad third envelope does not leave two sent and one not;
- publisher confirms: ``publish`` returns only once the broker has stored each
  message (persistent), one confirm at a time, so the count it reports is
  exact;
- ``mandatory=True`` on the default exchange: a queue that does not exist (a
  misspelt actor) makes the broker return the message, which raises
  ``UnroutableError`` naming the queue instead of dropping it silently.

Names follow the ``rabbitmq`` transport (``asya.transports``): actor ``prep``
is queue ``asya-prep`` on the wire, or ``<queue_prefix>prep`` with the
transport option ``queue_prefix`` (``ASYA_TRANSPORT_OPT_QUEUE_PREFIX``). Like the
transport, we publish to the default exchange with the broker's queue name as
routing key (the topic exchange ``asya`` is bound too, for 0.1.x publishers,
but would not tell a missing queue from an unbound key as clearly).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from asya.client.errors import PublishError, UnroutableError
from asya.contracts.envelope import (
    QUEUE_PREFIX,
    encode_envelope,
    queue_name,
    stamp_published,
    validate_actor_name,
    validate_envelope,
)
from asya.contracts.errors import EnvelopeError
from asya.transports.base import broker_queue_name

URL_ENV = "ASYA_TRANSPORT_URL"
PREFIX_ENV = "ASYA_TRANSPORT_OPT_QUEUE_PREFIX"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def broker_queue(queue_or_actor: str, queue_prefix: str | None = None) -> str:
    """The broker's queue name for an actor (``prep``) or a canonical queue name (``asya-prep``, ``asya-dlq``)."""
    prefix = os.environ.get(PREFIX_ENV, QUEUE_PREFIX) if queue_prefix is None else queue_prefix
    if queue_or_actor.startswith(QUEUE_PREFIX):
        canonical = queue_or_actor
        validate_actor_name(canonical.removeprefix(QUEUE_PREFIX), "queue")
    else:
        canonical = queue_name(validate_actor_name(queue_or_actor, "queue"))
    return broker_queue_name(canonical, prefix)


def publish(
    queue_or_actor: str,
    envelopes: Mapping[str, Any] | Iterable[Mapping[str, Any]],
    *,
    url: str | None = None,
    queue_prefix: str | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Publish ``envelopes`` (one or several) to ``queue_or_actor``'s queue; how many the broker confirmed (all).

    Raises ``EnvelopeError`` (nothing sent) for an envelope that breaks the contract, ``UnroutableError`` when
    the queue does not exist, ``PublishError`` for anything else; both carry ``confirmed``, the count stored
    before the failure. Broker address: ``url`` or ``ASYA_TRANSPORT_URL`` (default: local guest).
    """
    batch = [envelopes] if isinstance(envelopes, Mapping) else list(envelopes)
    bodies = []
    for index, env in enumerate(batch):
        try:
            validate_envelope(env)
        except EnvelopeError as exc:
            if len(batch) == 1:
                raise
            raise EnvelopeError(f"[{index}].{exc.field}", f"{exc.reason} (nothing was sent)") from exc
        bodies.append(encode_envelope(stamp_published(dict(env))))
    queue = broker_queue(queue_or_actor, queue_prefix)
    broker = url or os.environ.get(URL_ENV) or DEFAULT_URL
    try:
        import pika
        import pika.exceptions
    except ModuleNotFoundError as exc:
        raise ImportError(f"asya.client.publish needs {exc.name!r}: pip install 'asya[client]'") from exc

    where = _where(broker)
    params = pika.URLParameters(broker)
    params.socket_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    params.connection_attempts = 1
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise PublishError(f"cannot connect to RabbitMQ at {where}: {_describe(exc)}") from exc
    confirmed = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
        for body in bodies:
            try:
                channel.basic_publish("", queue, body, properties=props, mandatory=True)
            except pika.exceptions.UnroutableError as exc:
                raise UnroutableError(queue, confirmed) from exc
            except pika.exceptions.NackError as exc:
                raise PublishError(
                    f"RabbitMQ at {where} refused envelope {confirmed + 1} for {queue!r} (nack): not stored",
                    confirmed,
                ) from exc
            confirmed += 1
    except pika.exceptions.AMQPError as exc:
        raise PublishError(
            f"lost RabbitMQ at {where} after {confirmed} confirmed envelope(s) for {queue!r}: {_describe(exc)}; "
            "the envelope in flight may or may not be stored",
            confirmed,
        ) from exc
    finally:
        if connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass  # everything we report was already confirmed
    return confirmed


def _where(url: str) -> str:
    """``host:port/vhost`` of an AMQP URL: never the credentials, which must not reach logs or terminals."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
