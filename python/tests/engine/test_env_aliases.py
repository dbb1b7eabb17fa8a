"""Environment names from Asya 0.1.x and the onboarding guide work; two names that disagree refuse to start."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.procs import Proc, base_env, start_runtime

from asya import transports
from asya.contracts import encode_envelope, queue_name
from asya.engine import aliases
from asya.sidecar.settings import SidecarSettings


def test_every_alias_lands_on_our_setting() -> None:
    s = SidecarSettings.from_env(
        {
            "ASYA_ACTOR_NAME": "text-processor",
            "ASYA_RABBITMQ_HOST": "rabbit",
            "ASYA_RABBITMQ_PORT": "5673",
            "ASYA_RABBITMQ_USERNAME": "asya",
            "ASYA_RABBITMQ_PASSWORD": "p@ss",
            "ASYA_RABBITMQ_EXCHANGE": "asya",
            "ASYA_RABBITMQ_PREFETCH": "5",
            "ASYA_RUNTIME_TIMEOUT": "15m",
            "ASYA_STEP_HAPPY_END": "my-happy",
            "ASYA_ACTOR_ERROR_END": "my-errors",
            "ASYA_AWS_REGION": "eu-central-1",
            "ASYA_METRICS_ADDR": ":9090",
            "ASYA_SOCKETS_DIR": "/tmp/sockets",
        }
    )
    e = s.engine
    assert e.actor == "text-processor"
    assert (e.transport.kind, e.transport.url) == ("rabbitmq", "amqp://asya:p%40ss@rabbit:5673/")
    assert e.transport.options["exchange"] == "asya" and e.transport.region == "eu-central-1"
    assert (e.prefetch, s.processing_timeout_s, e.http_port) == (5, 900.0, 9090)
    assert (e.happy_end, e.error_end, s.socket_dir) == ("my-happy", "my-errors", "/tmp/sockets")


def test_sqs_endpoint_alias_picks_the_sqs_transport() -> None:
    e = SidecarSettings.from_env({"ASYA_ACTOR": "a", "ASYA_SQS_ENDPOINT": "http://127.0.0.1:9324"}).engine
    assert (e.transport.kind, e.transport.url) == ("sqs", "http://127.0.0.1:9324")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ASYA_ACTOR": "a", "ASYA_ACTOR_NAME": "b"}, ("ASYA_ACTOR", "ASYA_ACTOR_NAME")),
        (
            {"ASYA_ACTOR": "a", "ASYA_STEP_ERROR_END": "x", "ASYA_ACTOR_ERROR_END": "y"},
            ("ASYA_STEP_ERROR_END", "ASYA_ACTOR_ERROR_END"),
        ),
        (
            {"ASYA_ACTOR": "a", "ASYA_PROCESSING_TIMEOUT_S": "60", "ASYA_RUNTIME_TIMEOUT": "5m"},
            ("ASYA_PROCESSING_TIMEOUT_S", "ASYA_RUNTIME_TIMEOUT"),
        ),
    ],
)
def test_two_names_that_disagree_are_an_error_naming_both(env: dict[str, str], names: tuple[str, str]) -> None:
    with pytest.raises(aliases.ConflictingSettings) as caught:
        SidecarSettings.from_env(env)
    for name in names:
        assert name in str(caught.value)


def test_two_names_that_agree_are_fine_and_a_password_never_shows() -> None:
    assert SidecarSettings.from_env({"ASYA_ACTOR": "a", "ASYA_ACTOR_NAME": "a"}).actor == "a"
    with pytest.raises(aliases.ConflictingSettings) as caught:
        SidecarSettings.from_env(
            {"ASYA_ACTOR": "a", "ASYA_TRANSPORT_URL": "amqp://u:secret1@h/", "ASYA_RABBITMQ_URL": "amqp://u:secret2@h/"}
        )
    assert "secret1" not in str(caught.value) and "secret2" not in str(caught.value)


@pytest.mark.parametrize("value", ["5x", "m5", "", "1h-3m"])
def test_a_duration_that_is_not_one_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        aliases.go_duration_seconds(value)


@pytest.mark.rabbitmq
@pytest.mark.timeout(90)
async def test_a_sidecar_configured_the_0_1_way_processes_and_a_conflicting_one_refuses(
    rabbitmq_server: Any, tmp_path: Path
) -> None:
    u = uuid.uuid4().hex[:8]
    actor, happy = f"legacy-{u}", f"happy-{u}"
    sock = Path(tempfile.mkdtemp(prefix="asya-alias-"))
    runtime = start_runtime("support.handlers.add_one", sock, tmp_path)
    old_style = base_env(
        ASYA_ACTOR_NAME=actor,
        ASYA_RABBITMQ_URL=rabbitmq_server.url,
        ASYA_RUNTIME_TIMEOUT="5m",
        ASYA_STEP_HAPPY_END=happy,
        ASYA_SOCKETS_DIR=str(sock),
        ASYA_METRICS_ADDR=":0",
    )
    sidecar = Proc([sys.executable, "-m", "asya.sidecar"], old_style, tmp_path / "legacy-sidecar.log")
    bus = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url))
    await bus.connect()
    try:
        for q in (actor, happy):
            await bus.ensure_queue(queue_name(q))
        env = {"id": f"al-{u}", "route": {"actors": [actor], "current": 0}, "payload": {"n": 1}}
        await bus.publish(queue_name(actor), encode_envelope(env))

        async def first() -> dict[str, Any]:
            async for d in bus.consume(queue_name(happy), prefetch=1):
                await d.ack()
                msg: dict[str, Any] = json.loads(d.body)
                return msg
            raise AssertionError("closed")

        out = await asyncio.wait_for(first(), 45)
        assert out["payload"]["n"] == 2, sidecar.log()[-2000:]
    finally:
        sidecar.stop()
        runtime.stop()
        await bus.close()
    refused = subprocess.run(
        [sys.executable, "-m", "asya.sidecar"],
        env=base_env(ASYA_ACTOR="a", ASYA_ACTOR_NAME="b", ASYA_HTTP_PORT="0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2, refused.stderr
    assert "ASYA_ACTOR" in refused.stderr and "ASYA_ACTOR_NAME" in refused.stderr
