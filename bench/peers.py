"""What every peer framework's bench (Celery, Dramatiq) starts from: the broker, a logs folder, the work size."""

from __future__ import annotations

from pathlib import Path

from bench.asya_bench import make_payload


class PeerBench:
    def __init__(self, amqp_url: str, work: Path, n: int, payload_bytes: int, timeout_s: float = 300.0) -> None:
        self.url = amqp_url
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.n = n
        self.payload_bytes = payload_bytes
        self.timeout_s = timeout_s
        make_payload(payload_bytes)  # validates the size early
