"""The Celery peer baseline: a 3-task chain of no-op tasks on the same RabbitMQ.

Started as ``celery -A bench.celery_app worker ...`` by bench/celery_bench.py,
which also imports it to publish the chains. Settings chosen for parity with
Asya's guarantees (see docs/benchmarks.md):

- ``task_acks_late``: a task message is acked after the task ran and its chain
  successor was published, like the sidecar acks after its outputs are confirmed;
  ``task_reject_on_worker_lost`` so a killed worker's tasks come back.
- persistent messages on a durable queue, and publisher confirms on every publish
  (``broker_transport_options.confirm_publish``), like the rabbitmq transport.
- no result backend: the last task publishes a persistent, confirmed message to
  ``bench-celery-done``, the way the last actor publishes to ``asya-happy-end``;
  the bench counts that queue. Same number of broker publishes per chain as Asya.

``BENCH_AMQP_URL`` is the broker; ``BENCH_CELERY_PREFETCH`` the worker prefetch
multiplier; ``BENCH_CELERY_CONFIRM=0`` turns confirms off (used only by the
bench process while pre-loading, which it verifies by counting the queue).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, chain
from kombu import Queue

TASK_QUEUE = "bench-celery"
DONE_QUEUE = "bench-celery-done"

app = Celery("bench", broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_default_queue=TASK_QUEUE,
    task_queues=[Queue(TASK_QUEUE, durable=True)],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_default_delivery_mode="persistent",
    task_ignore_result=True,
    result_backend=None,
    task_serializer="json",
    accept_content=["json"],
    broker_transport_options={"confirm_publish": os.environ.get("BENCH_CELERY_CONFIRM", "1") == "1"},
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "16")),
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
)

_done = Queue(DONE_QUEUE, durable=True)


@app.task(name="bench.step")
def step(payload: Any) -> Any:
    """No-op, like bench.handlers.echo: the result is the next task's argument."""
    return payload


@app.task(name="bench.finish")
def finish(payload: Any) -> None:
    """Last step: record completion with a persistent, confirmed publish (the happy-end equivalent)."""
    with app.producer_or_acquire() as producer:
        producer.publish(
            {"payload": payload},
            exchange="",
            routing_key=DONE_QUEUE,
            delivery_mode=2,
            serializer="json",
            declare=[_done],
            retry=True,
        )


def three_step_chain(payload: Any) -> Any:
    return chain(step.s(payload), step.s(), finish.s())
