"""Engine tests: a real broker per transport kind, the engine run in this event loop."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asya import transports


@pytest.fixture(
    params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq), pytest.param("sqs", marks=pytest.mark.sqs)]
)
def transport_settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> transports.TransportSettings:
    if request.param == "local":
        return transports.TransportSettings(kind="local", url=str(tmp_path / "queues"), visibility_timeout_s=5)
    if request.param == "rabbitmq":
        server: Any = request.getfixturevalue("rabbitmq_server")
        return transports.TransportSettings(kind="rabbitmq", url=server.url, visibility_timeout_s=5)
    sqs: Any = request.getfixturevalue("sqs_server")
    for key, value in sqs.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return transports.TransportSettings(kind="sqs", url=sqs.url, region=sqs.region, visibility_timeout_s=5)


@pytest.fixture
def unique() -> str:
    """A per-test suffix: queues on the session broker never leak between tests."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def bus(transport_settings: transports.TransportSettings) -> AsyncIterator[transports.Transport]:
    t = transports.create(transport_settings)
    await t.connect()
    yield t
    await t.close()
