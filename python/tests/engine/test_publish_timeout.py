"""A broker that stops confirming is broker trouble, not a slow handler (real RabbitMQ, real sidecar).

The processing timeout bounds the handler only. Here the handler finishes at once, but the broker
is under a memory alarm and confirms nothing for longer than that timeout: the sidecar must give
the input back (transport publish timeout -> TransportError) and deliver the output once the
alarm clears, and error-end must see no ``timeout_error``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.procs import start_runtime, start_sidecar, wait_until

from asya import transports
from asya.contracts import encode_envelope, queue_name

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(180)]

PROCESSING_TIMEOUT_S = 8.0


async def _first(t: transports.Transport, queue: str, timeout: float) -> dict[str, Any]:
    async def take() -> dict[str, Any]:
        async for d in t.consume(queue, prefetch=1):
            await d.ack()
            msg: dict[str, Any] = json.loads(d.body)
            return msg
        raise AssertionError(f"{queue} closed")

    return await asyncio.wait_for(take(), timeout)


async def test_unconfirmed_publish_is_given_back_not_blamed_on_the_handler(
    rabbitmq_server: Any, tmp_path: Path
) -> None:
    u = uuid.uuid4().hex[:8]
    actor, nxt, error_end = f"slowbroker-{u}", f"next-{u}", f"error-end-{u}"
    env_vars = {"ASYA_TRANSPORT": "rabbitmq", "ASYA_TRANSPORT_URL": rabbitmq_server.url}
    bus = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url))
    await bus.connect()
    sock = Path(tempfile.mkdtemp(prefix="asya-pt-"))
    runtime = start_runtime("support.handlers.wait_for_file", sock, tmp_path)
    sidecar = start_sidecar(
        actor,
        sock,
        tmp_path,
        env_vars,
        ASYA_PROCESSING_TIMEOUT_S=str(PROCESSING_TIMEOUT_S),
        ASYA_TRANSPORT_OPT_PUBLISH_TIMEOUT_S="1",
        ASYA_ERROR_END_ACTOR=error_end,
        ASYA_MAX_DELIVERIES="20",
    )
    alarm = False
    try:
        for q in (actor, nxt, error_end):
            await bus.ensure_queue(queue_name(q))
        started, gate = tmp_path / "started", tmp_path / "gate"
        payload = {"started": str(started), "gate": str(gate), "n": 1}
        env = {"id": f"pt-{u}", "route": {"actors": [actor, nxt], "current": 0}, "payload": payload}
        await bus.publish(queue_name(actor), encode_envelope(env))
        await asyncio.to_thread(wait_until, started.exists, 30.0, 0.01, "the handler to start")
        t0 = time.monotonic()
        await asyncio.to_thread(rabbitmq_server.ctl, "set_vm_memory_high_watermark", "0")
        alarm = True
        gate.write_text("go")  # the handler returns at once; its output cannot be confirmed
        # hold the alarm past the processing timeout: a timeout that also covered publishing would fire
        await asyncio.sleep(max(0.0, PROCESSING_TIMEOUT_S + 2.0 - (time.monotonic() - t0)))
        await asyncio.to_thread(rabbitmq_server.ctl, "set_vm_memory_high_watermark", "0.4")
        alarm = False
        try:
            out = await _first(bus, queue_name(nxt), 60.0)
        except TimeoutError:
            raise AssertionError(
                f"no output 60 s after the alarm cleared; sidecar log:\n{sidecar.log()[-6000:]}"
            ) from None
        assert out["id"] == f"pt-{u}" and out["payload"] == {"done": 1}
        # the output only leaves after the handler's call ended well: a timeout_error would have gone to
        # error-end instead, before it, so error-end must be empty now (no observation window needed)
        assert await bus.queue_depth(queue_name(error_end)) == 0, "the broker's stall was blamed on the handler"
        assert "not confirmed within" in sidecar.log(), sidecar.log()[-3000:]
    finally:
        if alarm:
            await asyncio.to_thread(rabbitmq_server.ctl, "set_vm_memory_high_watermark", "0.4")
        sidecar.stop()
        runtime.stop()
        await bus.close()
