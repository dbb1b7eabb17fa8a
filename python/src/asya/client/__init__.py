"""The Asya client: submit and follow jobs through the gateway, or publish envelopes straight to a queue.

- ``Client`` (httpx): ``submit``, ``call_tool``, ``get``, ``list``/``iter_jobs``, ``watch`` (the SSE stream,
  resumed with ``Last-Event-ID`` when it breaks), ``cancel``; gateway errors raise ``GatewayError`` subclasses.
- ``publish`` (pika): validated envelopes onto ``asya-<actor>`` with publisher confirms and mandatory routing.

Layer: above ``contracts`` and ``transports`` (naming only), beside the engine; ``asya.cli`` builds on it.
Install with ``pip install 'asya[client]'``.
"""

from asya.client.errors import (
    ClientError,
    ConflictError,
    ConnectionFailedError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    NotSupportedError,
    PublishError,
    UnauthorizedError,
    UnavailableError,
    UnroutableError,
)
from asya.client.events import FINAL, Event
from asya.client.gateway import TOKEN_ENV, URL_ENV, Client, JobPage
from asya.client.publishing import broker_queue, publish

__all__ = [
    "FINAL",
    "TOKEN_ENV",
    "URL_ENV",
    "Client",
    "ClientError",
    "ConflictError",
    "ConnectionFailedError",
    "Event",
    "GatewayError",
    "InvalidRequestError",
    "JobPage",
    "NotFoundError",
    "NotSupportedError",
    "PublishError",
    "UnauthorizedError",
    "UnavailableError",
    "UnroutableError",
    "broker_queue",
    "publish",
]
