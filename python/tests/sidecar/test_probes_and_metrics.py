"""/healthz, /readyz and /metrics answer on the sidecar's HTTP port."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from sidecar.conftest import Actors, Bus, envelope
from support.procs import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.parametrize("broker", ["local"], indirect=True)
async def test_probes_and_metrics(broker, bus: Bus, actors: Actors) -> None:
    port = _free_port()
    me, nxt = bus.actor("observed"), bus.actor("next")
    pair = actors.start(me, "echo", ASYA_HTTP_PORT=port)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 20, what="/readyz 200")
    assert _get(f"{base}/healthz") == (200, "ok")
    await bus.publish(me, envelope("m-1", [me, nxt], {"x": 1}))
    await bus.collect(nxt, 1)
    status, text = _get(f"{base}/metrics")
    assert status == 200
    assert f'asya_sidecar_messages_processed_total{{actor="{me}",outcome="success"}} 1.0' in text
    assert f'asya_sidecar_outputs_published_total{{actor="{me}",destination="{nxt}"}} 1.0' in text
    assert "asya_sidecar_hop_seconds_bucket" in text
    pair.runtime.stop()  # runtime gone -> not ready, but still healthy (no restart needed)
    wait_until(lambda: _get(f"{base}/readyz")[0] == 503, 20, what="/readyz 503 without runtime")
    assert _get(f"{base}/healthz")[0] == 200
