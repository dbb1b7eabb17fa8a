"""``asya dev run``: a whole pipeline on one machine, as real processes.

Starts the crew actors and, per actor replica, a runtime + sidecar pair
(``supervisor``), feeds the pipeline's inputs to the first actor, follows
progress through the local gateway stand-in (``tracker``) and stops when the
run is over. Over means all of:

1. every input id and each fan-out descendant reached a stored result or a
   dead letter (ids, not report counts: reports repeat and get lost);
2. every queue of the pipeline (actor queues, happy-end, error-end) is empty,
   nothing in flight, and no report arrived for ``settle_s``;
3. once the processes are stopped (nothing can be in flight then) the queues
   are still empty; if not, the processes start again and the wait goes on.

The summary counts the files in the results and dead-letter folders.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from asya import transports
from asya.cli import results as stored
from asya.cli.drain import QueueProbe
from asya.cli.pipeline import Pipeline
from asya.cli.supervisor import Supervisor, child_env
from asya.cli.tracker import Progress, RunState, Tracker
from asya.contracts import DLQ_NAME, ERROR_END, HAPPY_END, encode_envelope, queue_name
from asya.contracts.envelope import stamp_published
from asya.engine.settings import transport_options

log = logging.getLogger("asya.cli.devrun")

PROBE_EVERY_S = 0.2
"""Queue checks at most this often (every report wakes the wait loop)."""
FILE_SCAN_EVERY_S = 1.0
"""While queues look empty but ids are open (reports lost), look at the stored files this often."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
    transport: str = "local"
    url: str = ""
    out_dir: Path = Path(".asya-demo")
    timeout_s: float = 600.0
    settle_s: float | None = None
    """How long 'all ids ended, queues empty, no reports' must hold; default by transport."""


@dataclasses.dataclass(frozen=True)
class Summary:
    """What the folders hold for this run (files written before the run are left out)."""

    inputs: int
    results: int
    """Distinct ids of this run with a stored result (never more than the files)."""
    result_files: int
    dead_letters: int
    dead_letter_files: int
    foreign_files: int
    """Files this run stored for ids it never produced (messages published into its queues by others)."""
    unaccounted: tuple[str, ...]
    """Inputs with no result or dead letter for themselves or any descendant."""
    still_queued: int | None
    """Envelopes left in the pipeline's queues after the processes stopped (None: could not tell)."""
    processed_twice: int
    dlq_only: int
    """Envelopes the consumer engine sent straight to asya-dlq (delivery limit): no file, but ended."""
    foreign_reports: int
    temp_files_removed: int


@dataclasses.dataclass
class RunResult:
    progress: Progress
    complete: bool
    elapsed_s: float
    results_dir: Path
    summary: Summary
    input_ids: tuple[str, ...]
    resumed: int = 0
    """Times the processes were started again because envelopes were left once they stopped."""


def transport_url(opts: RunOptions) -> str:
    if opts.transport == "local" and not opts.url:
        return str((opts.out_dir / "queues").resolve())
    return opts.url


def pipeline_queues(pipeline: Pipeline) -> list[str]:
    return [*(queue_name(a) for a in pipeline.route), queue_name(HAPPY_END), queue_name(ERROR_END)]


async def _start_processes(pipeline: Pipeline, supervisor: Supervisor, base: dict[str, str], results: Path) -> None:
    gateway = base["ASYA_GATEWAY_URL"]
    crew_env = {**base, "ASYA_STORAGE_URL": results.as_uri()}
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


async def run(
    pipeline: Pipeline,
    opts: RunOptions,
    render: Callable[[Progress, float], None] | None = None,
    on_running: Callable[[Supervisor], None] | None = None,
) -> RunResult:
    """Run ``pipeline`` to its end (or ``opts.timeout_s``); ``on_running`` sees the supervisor once inputs are in."""
    out = opts.out_dir.resolve()
    results = out / "results"
    logs = out / "logs"
    for d in (results, logs):
        d.mkdir(parents=True, exist_ok=True)
    before = stored.snapshot(results)
    url = transport_url(opts)
    queues = pipeline_queues(pipeline)

    tracker = Tracker()
    gateway = await tracker.start()
    # the same transport options the child processes read (queue_prefix, exchange, queue_type, ...)
    options = transport_options()
    transport = transports.create(transports.TransportSettings(kind=opts.transport, url=url, options=options))
    await transport.connect()
    probe = QueueProbe(transport, opts.transport, url)
    settle_s = opts.settle_s if opts.settle_s is not None else (0.5 if probe.sees_in_flight else 1.5)
    supervisor = Supervisor(logs)
    started = time.monotonic()
    complete = False
    still_queued: int | None = None
    resumed = 0
    try:
        for queue in [*queues, DLQ_NAME]:
            await transport.ensure_queue(queue)
        base = {"ASYA_TRANSPORT": opts.transport, "ASYA_TRANSPORT_URL": url, "ASYA_GATEWAY_URL": gateway}
        await _start_processes(pipeline, supervisor, base, results)

        run_id = uuid.uuid4().hex[:8]
        ids = [f"{pipeline.name}-{run_id}-{i:05d}" for i in range(len(pipeline.inputs))]
        tracker.expect(ids)  # before publishing: an early report must find its id known
        first = queue_name(pipeline.route[0])
        for env_id, payload in zip(ids, pipeline.inputs, strict=True):
            env = {
                "id": env_id,
                "route": {"actors": list(pipeline.route), "current": 0},
                "headers": {"x-asya-pipeline": pipeline.name},
                "payload": payload,
            }
            await transport.publish(first, encode_envelope(stamp_published(env)))
        if on_running is not None:
            on_running(supervisor)

        deadline = started + opts.timeout_s
        while await _wait_quiet(tracker, probe, queues, results, before, settle_s, deadline, started, render):
            await supervisor.stop()
            # With no consumer left nothing is in flight, so what the queues hold now is everything.
            still_queued = await _settled_depth(probe, queues)
            if still_queued == 0:
                complete = True
                break
            resumed += 1
            log.warning(
                "%s envelope(s) still queued after the run looked done; starting the processes again", still_queued
            )
            await supervisor.resume()
        else:
            await supervisor.stop()
            still_queued = await _settled_depth(probe, queues)
    finally:
        await supervisor.stop()
        await transport.close()
        await tracker.stop()
    removed = stored.sweep_temp(results)
    summary = summarize(tracker.state, stored.scan(results, before), still_queued, removed)
    complete = complete and not summary.unaccounted
    elapsed = time.monotonic() - started
    input_ids = tuple(sorted(tracker.state.inputs))
    return RunResult(tracker.progress, complete, elapsed, results, summary, input_ids, resumed)


async def _settled_depth(probe: QueueProbe, queues: list[str]) -> int | None:
    # the broker returns a dead consumer's unacked messages asynchronously: look twice
    first = await probe.pending(queues)
    await asyncio.sleep(0.5)
    second = await probe.pending(queues)
    if first is None or second is None:
        return None
    return max(first, second)


async def _wait_quiet(
    tracker: Tracker,
    probe: QueueProbe,
    queues: list[str],
    results: Path,
    before: frozenset[Path],
    settle_s: float,
    deadline: float,
    started: float,
    render: Callable[[Progress, float], None] | None,
) -> bool:
    """True once every id ended, the queues are empty and no report came for ``settle_s``; False at the deadline."""
    state = tracker.state
    quiet_since: float | None = None
    seen_version = -1
    next_scan = next_probe = 0.0
    last_depth: int | None = None
    while True:
        now = time.monotonic()
        if render is not None:
            render(tracker.progress, now - started)
        if now >= deadline:
            return False
        if state.version != seen_version:
            seen_version, quiet_since = state.version, None
        depth: int | None = None
        if not state.open_ids and now >= next_probe:
            next_probe = now + PROBE_EVERY_S
            depth = await probe.pending(queues)
        elif not state.open_ids:
            depth = last_depth
        elif now >= next_scan:  # ids open: while work flows that is normal, so only look now and then
            next_scan = now + FILE_SCAN_EVERY_S
            depth = await probe.pending(queues)
            if depth == 0:
                # queues empty but ids open: a report was lost; the stored files say how those ids ended
                scan = await asyncio.to_thread(stored.scan, results, before)
                state.resolve_from_files(scan.results, scan.dead_letters)
        last_depth = depth
        if depth == 0 and not state.open_ids:
            quiet_since = quiet_since if quiet_since is not None else now
            if now - quiet_since >= settle_s:
                return True
        else:
            quiet_since = None
        tracker.changed.clear()
        try:
            await asyncio.wait_for(tracker.changed.wait(), 0.2)
        except TimeoutError:
            pass


def summarize(state: RunState, scan: stored.Scan, still_queued: int | None, temp_removed: int) -> Summary:
    state.resolve_from_files(scan.results, scan.dead_letters)
    ours_results = {i for i in scan.results if state.is_ours(i)}
    ours_dead = {i for i in scan.dead_letters if state.is_ours(i)}
    foreign = sum(len(p) for i, p in (*scan.results.items(), *scan.dead_letters.items()) if not state.is_ours(i))
    ended_roots = {state.root_of(i) for i in ours_results | ours_dead}
    ended_roots |= {state.root_of(i) for i, kind in state.terminal.items() if kind == "dlq"}
    return Summary(
        inputs=len(state.inputs),
        results=len(ours_results),
        result_files=sum(len(scan.results[i]) for i in ours_results),
        dead_letters=len(ours_dead),
        dead_letter_files=sum(len(scan.dead_letters[i]) for i in ours_dead),
        foreign_files=foreign,
        unaccounted=tuple(sorted(state.inputs - ended_roots)),
        still_queued=still_queued,
        processed_twice=state.progress.processed_twice,
        dlq_only=sum(1 for i, kind in state.terminal.items() if kind == "dlq" and i not in ours_dead),
        foreign_reports=len(state.foreign_ids),
        temp_files_removed=temp_removed,
    )
