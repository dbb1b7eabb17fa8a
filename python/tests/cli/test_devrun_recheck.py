"""On RabbitMQ a message a consumer holds is invisible to the queue check, so dev run checks again once
every process is stopped and, when something was left, starts the processes again instead of claiming
completion."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from devrun_helpers import fault_pipeline, queued

from asya import transports
from asya.cli import devrun, results
from asya.cli.supervisor import Supervisor
from asya.contracts import encode_envelope, queue_name


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_an_envelope_held_unacked_during_the_quiet_check_is_processed_before_the_run_completes(
    rabbitmq_server: Any, tmp_path: Path
) -> None:
    pipeline = fault_pipeline(6)
    last = queue_name(pipeline.route[-1])
    holder = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url))
    await holder.connect()
    await holder.ensure_queue(last)
    env = {"id": "held-1", "route": {"actors": [pipeline.route[-1]], "current": 0}, "payload": {"n": 1}}
    await holder.publish(last, encode_envelope(env))
    stream = holder.consume(last, prefetch=1)
    held = await asyncio.wait_for(anext(aiter(stream)), 30)
    assert held.body == encode_envelope(env) or b'"held-1"' in held.body
    assert await holder.queue_depth(last) == 0  # unacked: the ready count cannot see it

    def release_on_stop(supervisor: Supervisor) -> None:
        stop = supervisor.stop

        async def stop_and_release(grace_s: float = 20.0) -> None:
            await stop(grace_s)
            # a consumer that goes away gives its unacked message back, as a stopped sidecar would
            if not holder_closed.is_set():
                holder_closed.set()
                await holder.close()

        supervisor.stop = stop_and_release  # type: ignore[method-assign]

    holder_closed = asyncio.Event()
    opts = devrun.RunOptions(transport="rabbitmq", url=rabbitmq_server.url, out_dir=tmp_path, timeout_s=120)
    try:
        result = await devrun.run(pipeline, opts, on_running=release_on_stop)
    finally:
        if not holder_closed.is_set():
            await holder.close()
    left = await queued(rabbitmq_server.url, devrun.pipeline_queues(pipeline))
    assert not any(left.values()), f"the run said complete with envelopes queued: {left}"
    assert result.complete and result.resumed == 1, result.summary
    assert "held-1" in results.scan(tmp_path / "results").results
    assert result.summary.foreign_files == 1
