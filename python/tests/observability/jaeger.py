"""A real Jaeger (v2, built by ci/build-jaeger.sh) on loopback ports, read back through its query API."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.procs import Proc, base_env, free_port, poll

ROOT = Path(__file__).resolve().parents[3]


class Jaeger:
    """OTLP/HTTP in at ``url``; ``all()`` returns the spans of the one trace the gateway started, by trace id."""

    def __init__(self, logs: Path) -> None:
        build = subprocess.run([str(ROOT / "ci/build-jaeger.sh")], capture_output=True, text=True, check=False)
        assert build.returncode == 0, f"ci/build-jaeger.sh failed:\n{build.stderr[-3000:]}"
        home = Path(build.stdout.strip().splitlines()[-1])
        ports = {name: free_port() for name in ("OTLP_HTTP", "QUERY", "QUERY_GRPC", "HEALTH")}
        env = base_env(**{f"JAEGER_{k}_PORT": v for k, v in ports.items()})
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}  # Jaeger's own telemetry stays off
        self.proc = Proc(
            [str(home / "jaeger"), "--config", str(home / "config-loopback.yaml")], env, logs / "jaeger.log"
        )
        self.url = f"http://127.0.0.1:{ports['OTLP_HTTP']}"
        self.query = f"http://127.0.0.1:{ports['QUERY']}"
        poll(lambda: self._get(f"http://127.0.0.1:{ports['HEALTH']}/status") is not None, 30, "Jaeger healthy")
        self.trace_id = ""

    @staticmethod
    def _get(url: str) -> Any:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return json.loads(resp.read() or b"null")
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def all(self) -> list[dict[str, Any]]:
        """The spans of the trace the gateway started, from ``GET /api/traces/<trace id>``, in the test's shape."""
        if not self.trace_id:
            found = self._get(f"{self.query}/api/traces?service=asya-gateway&limit=5") or {}
            ids = {t["traceID"] for t in found.get("data") or []}
            if len(ids) != 1:
                return []
            self.trace_id = ids.pop()
        trace = ((self._get(f"{self.query}/api/traces/{self.trace_id}") or {}).get("data") or [None])[0]
        if not trace:
            return []
        services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
        out = []
        for s in trace["spans"]:
            parents = [r["spanID"] for r in s.get("references") or [] if r.get("refType") == "CHILD_OF"]
            out.append(
                {
                    "trace": s["traceID"],
                    "id": s["spanID"],
                    "parent": parents[0] if parents else "",
                    "name": s["operationName"],
                    "attrs": {t["key"]: str(t["value"]) for t in s.get("tags") or []},
                    "service": services.get(s["processID"]),
                }
            )
        return out

    def stop(self) -> None:
        self.proc.stop()
        if os.environ.get("ASYA_KEEP_JAEGER_LOG"):
            print(self.proc.log())
