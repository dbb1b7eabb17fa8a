"""Scale: many actors on one broker (20 actors x 1 replica) and one actor x 8 replicas.

    python -m bench.scale_bench --amqp-url URL [--n 4000] [--out bench/results/scale.json]

Per scenario: start every runtime and sidecar on empty queues and wait until each sidecar
says "consuming" (start-up is excluded), then publish N envelopes (spread over the actors'
queues, each routed actor -> sink) and time from the first publish to the N-th envelope in
the sink. Reported: throughput, CPU ms per envelope by role (broker from ``BENCH_BROKER_PID``,
as in the main bench), and the total RSS of all sidecars, runtimes and the broker at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from asya.contracts import queue_name
from asya.transports import Transport, TransportSettings, create

from bench import procs
from bench.asya_bench import CpuMeter, envelope, make_payload
from bench.stats import rnd

SINK = "bench-scale-sink"
MIB = 1024 * 1024


def _broker_rss_mib() -> float | None:
    pid = os.environ.get("BENCH_BROKER_PID")
    if not pid:
        return None
    try:
        p = psutil.Process(int(pid))
        return float(sum(x.memory_info().rss for x in (p, *p.children(recursive=True)))) / MIB
    except psutil.Error:
        return None


async def scenario(url: str, work: Path, actors: int, replicas: int, n: int, payload_bytes: int) -> dict[str, Any]:
    names = [f"scale-{i}" for i in range(actors)]
    transport: Transport = create(TransportSettings(kind="rabbitmq", url=url, visibility_timeout_s=60))
    await transport.connect()
    logs = work / f"{actors}x{replicas}" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    running: dict[str, procs.Proc] = {}
    try:
        for q in [*names, SINK]:
            with contextlib.suppress(Exception):
                await transport.delete_queue(queue_name(q))
            await transport.ensure_queue(queue_name(q))
        for a in names:
            for r in range(replicas):
                sock = work / f"{actors}x{replicas}" / "sock" / f"{a}-{r}"
                running[f"runtime {a}-{r}"] = procs.start_runtime(sock, logs, f"{a}-{r}")
                running[f"sidecar {a}-{r}"] = procs.start_sidecar(
                    a, sock, logs, "rabbitmq", url, 64, ASYA_RUNTIME_READY_TIMEOUT_S=60
                )
        for name, proc in running.items():
            if name.startswith("sidecar"):
                await asyncio.to_thread(proc.wait_log, "consuming", 180.0)
        payload = make_payload(payload_bytes)
        bodies = [
            (queue_name(names[i % actors]), envelope(f"s{i}", [names[i % actors], SINK], payload)) for i in range(n)
        ]
        cpu = CpuMeter(running)
        cpu.start()
        t0 = time.perf_counter()
        for start in range(0, n, 256):
            await asyncio.gather(*(transport.publish(q, b) for q, b in bodies[start : start + 256]))
        deadline = t0 + 300
        while (depth := await transport.queue_depth(queue_name(SINK))) < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"scale {actors}x{replicas}: only {depth}/{n} reached the sink in 300 s")
            for proc in running.values():
                proc.check()
            await asyncio.sleep(0.05)
        span = time.perf_counter() - t0
        split = cpu.stop(n)
        roles: dict[str, float] = {}
        for name, ms in split.items():
            roles[name.split(" ")[0]] = roles.get(name.split(" ")[0], 0.0) + (ms or 0.0)
        side = sum(p.rss_mib() for k, p in running.items() if k.startswith("sidecar"))
        rt = sum(p.rss_mib() for k, p in running.items() if k.startswith("runtime"))
        broker = _broker_rss_mib()
        return {
            "actors": actors,
            "replicas": replicas,
            "n": n,
            "throughput_eps": rnd(n / span, 1),
            "cpu_ms_per_envelope": {k: rnd(v, 3) for k, v in roles.items()},
            "broker_cpu_ms_per_envelope": rnd(roles.get("broker", float("nan")), 3),
            "broker_cpu_cores": rnd(roles.get("broker", float("nan")) * n / span / 1000, 2),
            "sidecars_rss_mib": rnd(side, 1),
            "runtimes_rss_mib": rnd(rt, 1),
            "broker_rss_mib": rnd(broker, 1) if broker is not None else None,
            "total_rss_mib": rnd(side + rt + (broker or 0.0), 1),
        }
    finally:
        for proc in running.values():
            proc.stop()
        await transport.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="asya-scale-"))
    out: dict[str, Any] = {}
    for actors, replicas in ((20, 1), (1, 8)):
        res = await scenario(args.amqp_url, work, actors, replicas, args.n, args.payload_bytes)
        print(f"scale {actors}x{replicas}: {json.dumps(res)}", file=sys.stderr)
        out[f"{actors}x{replicas}"] = res
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.scale_bench", description=__doc__)
    p.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", ""))
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--payload-bytes", type=int, default=1024)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "latest.json")
    args = p.parse_args(argv)
    if not args.amqp_url:
        raise SystemExit("scale bench needs --amqp-url or AMQP_URL (ci/bench.sh starts a private broker)")
    scale = asyncio.run(main_async(args))
    # merged into latest.json under "scale" (bench/run.py wrote the rest of it in the same make bench)
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["scale"] = scale
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(args.out)
    for key, r in scale.items():
        print(f"scale {key}: {r['throughput_eps']:.0f} env/s, broker {r['broker_cpu_ms_per_envelope']} ms/env "
              f"({r['broker_cpu_cores']} cores), total RSS {r['total_rss_mib']:.0f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
