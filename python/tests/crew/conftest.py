"""Fixtures for crew tests; the helpers live in crew_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from crew_helpers import settings_for

from asya.crew.settings import CrewSettings


@pytest.fixture
def crew_settings(tmp_path: Path) -> CrewSettings:
    return settings_for(tmp_path)


@pytest.fixture(
    params=[
        "local",
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("sqs", marks=pytest.mark.sqs),
    ]
)
def broker_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CrewSettings:
    """Crew settings on each transport in turn (servers started only for the params that need them)."""
    kind: str = request.param
    if kind == "local":
        return settings_for(tmp_path)
    if kind == "rabbitmq":
        server = request.getfixturevalue("rabbitmq_server")
        return settings_for(tmp_path, transport="rabbitmq", transport_url=server.url)
    server = request.getfixturevalue("sqs_server")
    for key, value in server.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return settings_for(tmp_path, transport="sqs", transport_url=server.url, visibility_timeout_s=10.0)
