"""Asya measurements on one transport: hop latency vs. the direct baseline, one
actor's throughput, and a 3-actor pipeline (throughput and latency).

Everything here drives real processes: one ``python -m asya.runtime`` per actor
(started once per transport) and ``python -m asya.sidecar`` processes started
per run. The bench process only publishes, consumes and counts, through the
same ``asya.transports`` the sidecar uses, on its own connections
(a publisher and a separate consumer, like two different services).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asya.contracts import queue_name
from asya.transports import Transport, TransportSettings, create

from bench import procs
from bench.stats import latency_summary, rnd

log = logging.getLogger("bench")


class CpuMeter:
    """CPU seconds used by named processes between ``start()`` and ``stop()``, per envelope.

    Load-independent: on a busy machine wall-clock throughput drops, CPU per envelope
    does not. The broker is included when ``BENCH_BROKER_PID`` is set (ci/bench.sh).
    """

    def __init__(self, procs_: dict[str, procs.Proc], children: bool = False, broker: bool = True) -> None:
        # (pid, with descendants): pool workers and the broker's Erlang VM are children.
        self.pids = {name: (p.pid, children) for name, p in procs_.items()}
        broker_pid = os.environ.get("BENCH_BROKER_PID")
        if broker and broker_pid:
            self.pids["broker"] = (int(broker_pid), True)
        self.pids["bench"] = (
            os.getpid(),
            False,
        )  # the bench's own children are the processes above
        self.before: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: procs.cpu_seconds(pid, kids) for name, (pid, kids) in self.pids.items()}

    def start(self) -> None:
        self.before = self._read()

    def stop(self, n: int) -> dict[str, float]:
        after = self._read()
        return {name: rnd((after[name] - self.before[name]) * 1000 / n, 4) for name in self.pids}  # type: ignore[misc]


async def measure_drain(
    transport: Transport,
    source: str,
    sink: str,
    n: int,
    timeout_s: float,
    children: list[procs.Proc],
    cpu: CpuMeter | None = None,
) -> dict[str, Any]:
    """Poll queue depths: the clock starts when ``source`` (pre-loaded with N) first drops
    below N, i.e. the consumer took its first message, and stops when ``sink`` holds N.

    Process start-up is excluded; pipeline fill and drain are included, so a chain
    whose completions all come at the end (Celery's single FIFO queue) is timed the
    same way as a pipeline whose completions trickle out from the start.
    """
    started = time.perf_counter()
    deadline = started + timeout_s
    first: float | None = None
    while True:
        if first is None:
            if await transport.queue_depth(source) < n:
                first = time.perf_counter()
                if cpu is not None:
                    cpu.start()
            else:
                for proc in children:
                    proc.check()
                await asyncio.sleep(0.01)
                continue
        depth = await transport.queue_depth(sink)
        now = time.perf_counter()
        if depth >= n:
            break
        if now > deadline:
            raise TimeoutError(f"only {depth}/{n} messages reached {sink} in {timeout_s}s")
        for proc in children:
            proc.check()
        await asyncio.sleep(0.05)
    span = max(now - first, 1e-9)
    out: dict[str, Any] = {
        "eps": n / span,
        "seconds": span,
        "startup_s": first - started,
    }
    if cpu is not None:
        out["cpu_ms_per_envelope"] = cpu.stop(n)
    return out


ACTORS = ("bench-a", "bench-b", "bench-c")
SINK = "bench-sink"  # a queue nobody consumes in throughput runs: one actor's outputs land here
DIRECT = "bench-direct"  # baseline queue: publish -> consume, no sidecar
HAPPY_END = "happy-end"
ERROR_END = "error-end"


def make_payload(size: int) -> dict[str, str]:
    """A JSON object whose compact encoding is exactly ``size`` bytes."""
    overhead = len(json.dumps({"data": ""}, separators=(",", ":")))
    return {"data": "x" * (size - overhead)}


def envelope(env_id: str, actors: list[str], payload: Any) -> bytes:
    return json.dumps(
        {
            "id": env_id,
            "route": {"actors": actors, "current": 0},
            "headers": {"bench": "1"},
            "payload": payload,
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class Config:
    n: int = 5000
    runs: int = 3
    samples: int = 300
    warmup: int = 30
    payload_bytes: int = 1024
    prefetches: tuple[int, ...] = (16, 64)
    latency_prefetch: int = 16
    timeout_s: float = 180.0


@dataclass
class Results:
    latency_runs: list[dict[str, Any]] = field(default_factory=list)
    actor_runs: list[dict[str, Any]] = field(default_factory=list)
    pipeline_runs: list[dict[str, Any]] = field(default_factory=list)


class Collector:
    """Consumes one queue in the background; records arrival time and id of each message."""

    def __init__(self, transport: Transport, queue: str) -> None:
        self.transport = transport
        self.queue = queue
        self.items: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for delivery in self.transport.consume(self.queue, prefetch=64):
            self.items.put_nowait((time.perf_counter(), delivery.body))
            await delivery.ack()

    async def wait_id(self, env_id: str, timeout: float) -> float:
        """Arrival time of the envelope ``env_id`` (older arrivals are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            arrived, body = await asyncio.wait_for(self.items.get(), max(deadline - loop.time(), 0.001))
            if json.loads(body).get("id") == env_id:
                return arrived

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


class TransportBench:
    """All Asya measurements on one transport kind."""

    def __init__(self, kind: str, url: str, work: Path, cfg: Config) -> None:
        self.kind = kind
        self.base_url = url
        self.work = work
        self.cfg = cfg
        self.payload = make_payload(cfg.payload_bytes)
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.runtimes: dict[str, procs.Proc] = {}
        self.sockets: dict[str, Path] = {}
        self.results = Results()
        self._run_no = 0

    # --- plumbing ---

    def _url(self) -> str:
        """Broker URL for a fresh run: the AMQP URL, or a new SQLite directory for ``local``."""
        self._run_no += 1
        if self.kind != "local":
            return self.base_url
        path = self.work / "local" / f"run-{self._run_no}"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    async def _connect(self, url: str) -> Transport:
        transport = create(TransportSettings(kind=self.kind, url=url, visibility_timeout_s=60))
        await transport.connect()
        return transport

    async def _reset(self, transport: Transport, queues: list[str]) -> None:
        for q in queues:
            with contextlib.suppress(Exception):
                await transport.delete_queue(q)
            await transport.ensure_queue(q)

    def start_runtimes(self) -> None:
        for actor in ACTORS:
            sock = Path(self.work / "sock" / actor)
            self.sockets[actor] = sock
            self.runtimes[actor] = procs.start_runtime(sock, self.logs, f"{self.kind}-{actor}")

    def stop_runtimes(self) -> None:
        for proc in self.runtimes.values():
            proc.stop()

    def _sidecar(self, actor: str, url: str, prefetch: int) -> procs.Proc:
        return procs.start_sidecar(
            actor,
            self.sockets[actor],
            self.logs,
            self.kind,
            url,
            prefetch,
            ASYA_RUNTIME_READY_TIMEOUT_S=30,
        )

    async def _preload(self, transport: Transport, queue: str, actors: list[str], tag: str) -> None:
        bodies = [envelope(f"{tag}-{i}", actors, self.payload) for i in range(self.cfg.n)]
        window = 256
        for start in range(0, len(bodies), window):
            await asyncio.gather(*(transport.publish(queue, b) for b in bodies[start : start + window]))
        depth = await transport.queue_depth(queue)
        if depth != self.cfg.n:
            raise RuntimeError(f"preload: {queue} holds {depth} messages, expected {self.cfg.n}")

    async def _time_until(
        self,
        transport: Transport,
        source: str,
        sink: str,
        sidecars: dict[str, procs.Proc],
    ) -> dict[str, Any]:
        """Time N envelopes from pre-loaded ``source`` to ``sink``; see measure_drain."""
        watched = {f"sidecar {a}": p for a, p in sidecars.items()}
        watched.update({f"runtime {a}": self.runtimes[a] for a in sidecars})
        cpu = CpuMeter(watched, broker=self.kind == "rabbitmq")
        return await measure_drain(
            transport,
            source,
            sink,
            self.cfg.n,
            self.cfg.timeout_s,
            list(sidecars.values()),
            cpu,
        )

    async def _errors(self, transport: Transport) -> int:
        return await transport.queue_depth(queue_name(ERROR_END))

    # --- 1, 2, 4b: latency (direct baseline, one hop, 3-actor pipeline), interleaved ---

    async def latency_run(self) -> dict[str, Any]:
        url = self._url()
        pub, sub = await self._connect(url), await self._connect(url)
        queues = [queue_name(q) for q in (DIRECT, SINK, HAPPY_END, ERROR_END, *ACTORS)]
        await self._reset(pub, queues)
        sidecars = [self._sidecar(a, url, self.cfg.latency_prefetch) for a in ACTORS]
        for proc in sidecars:  # start-up CPU must not land on the baseline samples
            await asyncio.to_thread(proc.wait_log, "consuming")
        direct, sink, end = (Collector(sub, queue_name(q)) for q in (DIRECT, SINK, HAPPY_END))
        hop_route = [ACTORS[0], SINK]
        pipe_route = list(ACTORS)
        samples: dict[str, list[float]] = {"direct": [], "hop": [], "pipeline": []}
        cases = (
            ("direct", queue_name(DIRECT), [DIRECT], direct),
            ("hop", queue_name(ACTORS[0]), hop_route, sink),
            ("pipeline", queue_name(ACTORS[0]), pipe_route, end),
        )
        try:
            # RabbitMQ pushes: interleave the three cases so load drift on the machine hits them
            # alike. ``local`` polls with a back-off that grows while a queue is idle, so there
            # each case runs as its own block of back-to-back envelopes (measured busy, not idle).
            total = self.cfg.warmup + self.cfg.samples
            if self.kind == "local":
                order = [(case, i) for case in cases for i in range(total)]
            else:
                order = [(case, i) for i in range(total) for case in cases]
            for (name, queue, route, collector), i in order:
                env_id = f"{name}-{i}"
                t0 = time.perf_counter()
                await pub.publish(queue, envelope(env_id, route, self.payload))
                arrived = await collector.wait_id(env_id, 30.0)
                if i >= self.cfg.warmup:
                    samples[name].append(arrived - t0)
            errors = await self._errors(pub)
        finally:
            for c in (direct, sink, end):
                await c.close()
            for proc in sidecars:
                proc.stop()
            await sub.close()
            await pub.close()
        run: dict[str, Any] = {name: latency_summary(s) for name, s in samples.items()}
        run["hop_overhead_ms"] = {p: run["hop"][p] - run["direct"][p] for p in ("p50", "p99")}
        run["error_end"] = errors
        # every sample, for the latency-distribution plot (bench/plots.py)
        run["samples_ms"] = {name: [round(x * 1000, 4) for x in v] for name, v in samples.items()}
        self.results.latency_runs.append(run)
        return run

    # --- 3: one actor's throughput ---

    async def actor_run(self, prefetch: int) -> dict[str, Any]:
        url = self._url()
        pub = await self._connect(url)
        try:
            a = ACTORS[0]
            await self._reset(pub, [queue_name(q) for q in (a, SINK, ERROR_END)])
            await self._preload(pub, queue_name(a), [a, SINK], f"t{prefetch}")
            sidecar = self._sidecar(a, url, prefetch)
            try:
                run = await self._time_until(pub, queue_name(a), queue_name(SINK), {a: sidecar})
                run["sidecar_rss_mib"] = sidecar.rss_mib()
                run["runtime_rss_mib"] = self.runtimes[a].rss_mib()
            finally:
                sidecar.stop()
            run["prefetch"] = prefetch
            run["error_end"] = await self._errors(pub)
        finally:
            await pub.close()
        self.results.actor_runs.append(run)
        return run

    # --- 4a: 3-actor pipeline throughput ---

    async def pipeline_run(self, prefetch: int) -> dict[str, Any]:
        url = self._url()
        pub = await self._connect(url)
        try:
            await self._reset(pub, [queue_name(q) for q in (*ACTORS, HAPPY_END, ERROR_END)])
            await self._preload(pub, queue_name(ACTORS[0]), list(ACTORS), "p")
            # Downstream actors first, so the clock (started by the first actor's first take)
            # never includes another sidecar's start-up.
            sidecars = [self._sidecar(a, url, prefetch) for a in ACTORS[1:]]
            try:
                for proc in sidecars:
                    await asyncio.to_thread(proc.wait_log, "consuming")
                sidecars.insert(0, self._sidecar(ACTORS[0], url, prefetch))
                run = await self._time_until(
                    pub,
                    queue_name(ACTORS[0]),
                    queue_name(HAPPY_END),
                    dict(zip(ACTORS, sidecars, strict=True)),
                )
                run["sidecar_rss_mib"] = [s.rss_mib() for s in sidecars]
            finally:
                for s in sidecars:
                    s.stop()
            run["prefetch"] = prefetch
            run["error_end"] = await self._errors(pub)
        finally:
            await pub.close()
        self.results.pipeline_runs.append(run)
        return run

    def cleanup(self) -> None:
        if self.kind == "local":
            shutil.rmtree(self.work / "local", ignore_errors=True)
