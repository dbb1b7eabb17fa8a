"""``asya dev run``: a whole pipeline on one machine, as real processes.

Starts the crew actors and, per actor replica, a runtime + sidecar pair
(``supervisor``), feeds the pipeline's inputs to the first actor, follows
progress through the local gateway stand-in (``tracker``), and stops when
every envelope has ended as a result or a dead letter (or the timeout hits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from asya import transports
from asya.cli.pipeline import Pipeline
from asya.cli.supervisor import Supervisor, child_env
from asya.cli.tracker import Progress, Tracker
from asya.contracts import DLQ_NAME, ERROR_END, HAPPY_END, encode_envelope, queue_name


@dataclasses.dataclass(frozen=True)
class RunOptions:
    transport: str = "local"
    url: str = ""
    out_dir: Path = Path(".asya-demo")
    timeout_s: float = 600.0
    settle_s: float = 0.3
    """How long 'nothing open' must hold before the run counts as complete (events arrive out of order)."""


@dataclasses.dataclass
class RunResult:
    progress: Progress
    complete: bool
    elapsed_s: float
    results_dir: Path


def transport_url(opts: RunOptions) -> str:
    if opts.transport == "local" and not opts.url:
        return str((opts.out_dir / "queues").resolve())
    return opts.url


async def run(
    pipeline: Pipeline, opts: RunOptions, render: Callable[[Progress, float], None] | None = None
) -> RunResult:
    out = opts.out_dir.resolve()
    results = out / "results"
    logs = out / "logs"
    for d in (results, logs):
        d.mkdir(parents=True, exist_ok=True)
    url = transport_url(opts)
    base = {"ASYA_TRANSPORT": opts.transport, "ASYA_TRANSPORT_URL": url}

    tracker = Tracker()
    gateway = await tracker.start()
    transport = transports.create(transports.TransportSettings(kind=opts.transport, url=url))
    await transport.connect()
    supervisor = Supervisor(logs)
    started = time.monotonic()
    complete = False
    try:
        for queue in [*(queue_name(a) for a in pipeline.route), queue_name(HAPPY_END), queue_name(ERROR_END), DLQ_NAME]:
            await transport.ensure_queue(queue)
        crew_env = {**base, "ASYA_STORAGE_URL": results.as_uri(), "ASYA_GATEWAY_URL": gateway}
        for crew in (HAPPY_END, ERROR_END):
            await supervisor.start(crew, ["asya.crew", crew], child_env(crew_env))
        for actor in pipeline.actors:
            for replica in range(actor.replicas):
                sock = supervisor.socket_dir(actor.name, replica)
                runtime_env = {
                    **actor.env,
                    "ASYA_ACTOR": actor.name,
                    "ASYA_HANDLER": actor.handler,
                    "ASYA_HANDLER_MODE": actor.mode,
                    "ASYA_SOCKET_DIR": str(sock),
                }
                await supervisor.start(
                    f"runtime-{actor.name}-{replica}", ["asya.runtime"], child_env(runtime_env, pipeline.pythonpath)
                )
                sidecar_env = {
                    **base,
                    "ASYA_ACTOR": actor.name,
                    "ASYA_SOCKET_DIR": str(sock),
                    "ASYA_PROCESSING_TIMEOUT_S": str(actor.timeout_s),
                    "ASYA_PREFETCH": str(actor.prefetch),
                    "ASYA_HTTP_PORT": "0",
                    "ASYA_GATEWAY_URL": gateway,
                }
                await supervisor.start(f"sidecar-{actor.name}-{replica}", ["asya.sidecar"], child_env(sidecar_env))

        run_id = uuid.uuid4().hex[:8]
        tracker.expect(len(pipeline.inputs))
        first = queue_name(pipeline.route[0])
        for i, payload in enumerate(pipeline.inputs):
            env = {
                "id": f"{pipeline.name}-{run_id}-{i:05d}",
                "route": {"actors": list(pipeline.route), "current": 0},
                "headers": {"x-asya-pipeline": pipeline.name},
                "payload": payload,
            }
            await transport.publish(first, encode_envelope(env))

        complete = await _wait_done(tracker, opts, started, render)
    finally:
        await supervisor.stop()
        await transport.close()
        await tracker.stop()
    return RunResult(tracker.progress, complete, time.monotonic() - started, results)


async def _wait_done(
    tracker: Tracker, opts: RunOptions, started: float, render: Callable[[Progress, float], None] | None
) -> bool:
    deadline = started + opts.timeout_s
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if render is not None:
            render(tracker.progress, now - started)
        if tracker.progress.open <= 0:
            quiet_since = quiet_since or now
            if now - quiet_since >= opts.settle_s:
                return True
        else:
            quiet_since = None
        if now >= deadline:
            return False
        tracker.changed.clear()
        try:
            await asyncio.wait_for(tracker.changed.wait(), 0.1)
        except TimeoutError:
            pass
