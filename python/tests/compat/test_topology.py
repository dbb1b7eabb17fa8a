"""Broker topology with 0.1.x and the onboarding guide, end to end: real sidecar, runtime and happy-end.

Publishers here are raw aio-pika clients written the way 0.1.x's sidecars and
gateway publish (durable topic exchange ``asya``, routing key = actor name, not
mandatory) and the way the guide's pika snippet does (``basic_publish`` to the
default exchange with the actor name as routing key). pika itself is not a
dependency; these are the same AMQP frames.
"""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from compat.conftest import Procs
from sidecar.conftest import Bus, envelope
from support.procs import Proc, base_env, free_port, start_runtime, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

NO_PREFIX = {"ASYA_TRANSPORT_OPT_QUEUE_PREFIX": ""}


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_actor(procs: Procs, actor: str, handler: str, **env: Any) -> Proc:
    """Runtime + sidecar for ``actor``; returns once the sidecar consumes (its queue is declared and bound)."""
    sock = Path(tempfile.mkdtemp(prefix="asya-t-"))
    procs.started.append(start_runtime(f"support.handlers.{handler}", sock, procs.log_dir))
    port = free_port()
    sidecar = procs.sidecar(actor, sock, ASYA_HTTP_PORT=port, **env)
    wait_until(lambda: _ready(port) or not sidecar.alive(), 30, what=f"sidecar {actor} ready")
    assert sidecar.alive(), sidecar.log()
    return sidecar


async def raw_publish(url: str, routing_key: str, body: bytes, exchange: str = "") -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        if exchange:
            ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        else:
            ex = channel.default_exchange
        await ex.publish(aio_pika.Message(body), routing_key=routing_key)  # not mandatory, like the guide
    finally:
        await connection.close()


async def test_a_01x_publisher_reaches_our_actor(rabbit_bus: Bus, procs: Procs) -> None:
    me = rabbit_bus.actor("legacy-fed")
    start_actor(procs, me, "add_one", **rabbit_bus.ends)
    env = envelope("from-01x", [me], {"n": 1})
    await raw_publish(procs.url, me, json.dumps(env).encode(), exchange="asya")
    [done] = await rabbit_bus.collect("happy-end", 1)
    assert (done["id"], done["payload"]["n"]) == ("from-01x", 2)


def _stored_ids(root: Path) -> set[str]:
    ids = set()
    for path in root.rglob("*.json"):
        if path.name.startswith(".tmp-") or path.relative_to(root).parts[0] in {"errors", "blobs"}:
            continue
        try:
            ids.add(str(json.loads(path.read_text()).get("id")))
        except (ValueError, OSError):
            continue  # being written
    return ids


@pytest.mark.parametrize("exchange", ["", "asya"], ids=["default-exchange", "asya-exchange"])
async def test_the_guides_pika_snippet_with_prefix_empty_reaches_happy_end(
    rabbit_bus: Bus, procs: Procs, tmp_path: Path, exchange: str
) -> None:
    # the guide: "the actor name becomes the queue name"; its snippet is, in pika,
    #   channel.basic_publish(exchange='', routing_key='preprocess', body=json.dumps(message))
    actor = rabbit_bus.actor("preprocess")
    store = tmp_path / "store"
    happy = Proc(
        [sys.executable, "-m", "asya.crew", "happy-end"],
        base_env(
            ASYA_TRANSPORT="rabbitmq",
            ASYA_TRANSPORT_URL=procs.url,
            ASYA_STORAGE_URL=f"file://{store}",
            ASYA_HTTP_HOST="127.0.0.1",
            ASYA_HTTP_PORT=0,
            **NO_PREFIX,
        ),
        tmp_path / "happy-end.log",
    )
    procs.started.append(happy)
    start_actor(procs, actor, "add_one", **NO_PREFIX)
    env_id = f"guide-{uuid.uuid4().hex[:8]}"
    message = {"id": env_id, "route": {"actors": [actor], "current": 0}, "payload": {"n": 41}}
    await raw_publish(procs.url, actor, json.dumps(message).encode(), exchange=exchange)
    wait_until(lambda: env_id in _stored_ids(store) or not happy.alive(), 60, what=f"{env_id} stored by happy-end")
    assert happy.alive(), happy.log()
    [result] = [p for p in store.rglob("*.json") if env_id in p.read_text()]
    assert json.loads(result.read_text())["payload"]["n"] == 42
