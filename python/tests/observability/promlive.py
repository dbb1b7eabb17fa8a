"""A real Prometheus for the dashboard proof: a private RabbitMQ with its prometheus plugin, the server, its API."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures import services

ROOT = Path(__file__).resolve().parents[3]
RABBITMQ = ROOT / "ci" / "rabbitmq.sh"
PROMETHEUS = ROOT / "ci" / "prometheus.sh"


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_for(condition: Any, what: str, timeout: float) -> None:
    """Poll ``condition`` until true; fail naming ``what`` at the deadline (blocking; run in a thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def plugin_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A RabbitMQ of this module alone with rabbitmq_prometheus on: AMQP_URL and PROMETHEUS_URL (per-object)."""
    directory = tmp_path_factory.mktemp("rabbitmq-prom")
    env = {**os.environ, "ASYA_RABBITMQ_PROMETHEUS": "1"}
    try:
        done = subprocess.run(
            [str(RABBITMQ), "start", str(directory)], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"ci/rabbitmq.sh start failed:\n{done.stdout}\n{done.stderr}")
        found = services.read_env(directory / "env")
        assert found.get("PROMETHEUS_URL"), "ci/rabbitmq.sh wrote no PROMETHEUS_URL with ASYA_RABBITMQ_PROMETHEUS=1"
        per_object = found["PROMETHEUS_URL"] + "metrics/per-object"
        wait_for(lambda: reachable(per_object), f"rabbitmq_prometheus at {per_object}", 60)
        yield found
    finally:
        subprocess.run([str(RABBITMQ), "stop", str(directory)], check=False, timeout=120, capture_output=True)


class Prometheus:
    """``ci/prometheus.sh`` in a directory, and its HTTP API."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.url = ""

    def start(self, jobs: dict[str, tuple[str, list[str]]]) -> None:
        """Scrape ``{job: (metrics path, [host:port, ...])}`` every second."""
        config = {
            "scrape_configs": [
                {"job_name": job, "metrics_path": path, "static_configs": [{"targets": targets}]}
                for job, (path, targets) in jobs.items()
            ]
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        scrape = self.dir / "scrape.yml"
        scrape.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [str(PROMETHEUS), "start", str(self.dir), str(scrape)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ci/prometheus.sh start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self.url = services.parse_env(done.stdout)["PROMETHEUS_URL"]

    def stop(self) -> None:
        subprocess.run([str(PROMETHEUS), "stop", str(self.dir)], check=False, timeout=60, capture_output=True)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        body = get_json(url)
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def targets_up(self) -> dict[str, str]:
        active = get_json(f"{self.url}api/v1/targets")["data"]["activeTargets"]
        return {f"{t['labels']['job']} {t['labels']['instance']}": t["health"] for t in active}


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result if math.isfinite(float(r["value"][1]))]
