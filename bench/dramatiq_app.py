"""The Dramatiq peer: a 3-actor no-op pipeline on RabbitMQ (loaded by ``dramatiq bench.dramatiq_app``).

Dramatiq's defaults, as shipped: ``RabbitmqBroker`` with its default middleware, acks
after the actor returns, persistent messages, one queue per actor (like Asya's one
queue per actor). ``BENCH_DRAMATIQ_CONFIRM=1`` sets ``confirm_delivery=True`` (every
publish waits for the broker's confirm); the default is Dramatiq's own: no confirms.

Each step sends the next with ``actor.send`` (a message through the broker per step,
as an Asya hop is); the last step publishes a persistent message to ``bench-dramatiq-done``
on the broker's own channel (confirmed when confirms are on), the happy-end equivalent
the bench counts.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker

DONE_QUEUE = "bench-dramatiq-done"
QUEUES = ("bench-dq-a", "bench-dq-b", "bench-dq-c")

broker = RabbitmqBroker(
    url=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    confirm_delivery=os.environ.get("BENCH_DRAMATIQ_CONFIRM", "0") == "1",
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUES[2], max_retries=0)
def step_c(payload: Any) -> None:
    broker.channel.basic_publish(
        exchange="",
        routing_key=DONE_QUEUE,
        body=json.dumps({"payload": payload}).encode(),
        properties=pika.BasicProperties(delivery_mode=2),
    )


@dramatiq.actor(queue_name=QUEUES[1], max_retries=0)
def step_b(payload: Any) -> None:
    step_c.send(payload)


@dramatiq.actor(queue_name=QUEUES[0], max_retries=0)
def step_a(payload: Any) -> None:
    step_b.send(payload)
