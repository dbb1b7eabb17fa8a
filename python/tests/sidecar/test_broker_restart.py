"""RabbitMQ restarts with envelopes in flight: the sidecar reconnects and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from sidecar.conftest import Actors, Broker, Bus, envelope
from support.procs import wait_until

from asya.contracts import queue_name

RABBITMQCTL = Path(os.environ.get("RMQ_BIN", "/usr/lib/rabbitmq/bin")) / "rabbitmqctl"


def unacked(broker: Broker, queue: str) -> int:
    """``messages_unacknowledged`` of ``queue`` as the broker itself counts it (rabbitmqctl on the test's node)."""
    directory = broker.server.dir
    if directory is None:
        pytest.skip("an external broker: its node cannot be queried with rabbitmqctl here")
    node_env = dict(line.split("=", 1) for line in (directory / "env").read_text().splitlines() if "=" in line)
    done = subprocess.run(
        [str(RABBITMQCTL), "list_queues", "--quiet", "--formatter", "json", "name", "messages_unacknowledged"],
        env={**os.environ, **node_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    counts = {q["name"]: int(q["messages_unacknowledged"]) for q in json.loads(done.stdout)}
    return counts.get(queue, 0)


def _accepting(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
async def test_broker_restart_mid_stream_loses_nothing(
    broker: Broker, bus: Bus, actors: Actors, tmp_path: Path
) -> None:
    me = bus.actor("steady")
    nxt = bus.actor("next")
    total = 300
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate.write_text("open")  # wait_for_file passes while the gate exists and blocks once it is gone
    for n in range(total):
        payload = {"n": n, "gate": str(gate), "started": str(started)}
        await bus.publish(me, envelope(f"r-{n}", [me, nxt], payload))
    actors.start(me, "wait_for_file", ASYA_PREFETCH="8")
    first = await bus.collect(nxt, 20)
    # Hold the stream: a handler call that starts after both unlinks waits for the gate,
    # so the sidecar's deliveries stay unacked through the restart.
    gate.unlink()
    started.unlink(missing_ok=True)
    await asyncio.to_thread(wait_until, started.exists, 30, what="a handler call blocked on the closed gate")
    held = await asyncio.to_thread(unacked, broker, queue_name(me))
    assert held > 0, "no delivery was unacked when the broker went down: the restart proves nothing"
    # In-flight deliveries are lost by the channel, kept by the queue. The held calls finish
    # while the broker is away, so their outputs meet a dead connection, not a fresh one.
    restart = asyncio.create_task(asyncio.to_thread(broker.server.restart))
    await asyncio.to_thread(wait_until, lambda: not _accepting(broker.url), 60, what="the broker to go down")
    gate.write_text("open")
    await restart
    # At-least-once: redeliveries may repeat an id; every id must arrive.
    expected = {f"r-{n}" for n in range(total)} - {o["id"] for o in first}
    rest = await bus.collect_ids(nxt, expected, timeout=90)
    assert {o["id"] for o in first + rest} == {f"r-{n}" for n in range(total)}
    assert actors.pairs[0].sidecar.alive(), "the sidecar must reconnect, not exit"
