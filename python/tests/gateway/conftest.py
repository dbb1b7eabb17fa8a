"""Fixtures for gateway tests: a migrated database per test, a local transport, a running gateway."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer
from gateway_helpers import RunningGateway, running_gateway, settings
from support.procs import Proc

from asya.gateway.migrations import migrate
from asya.gateway.settings import GatewaySettings
from asya.transports import TransportSettings


@pytest.fixture
async def gateway_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, migrated database: tests never see each other's jobs."""
    import asyncio

    dsn = await asyncio.to_thread(postgres_server.fresh_database)
    await migrate(dsn)
    return dsn


@pytest.fixture
def local_transport(tmp_path: Path) -> TransportSettings:
    return TransportSettings(kind="local", url=str(tmp_path / "queues"))


@pytest.fixture
def gateway_settings(gateway_dsn: str, local_transport: TransportSettings) -> GatewaySettings:
    return settings(gateway_dsn, local_transport)


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings) as gw:
        yield gw


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts (real sidecars, runtimes, crew): all signalled first, then stopped."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.signal(signal.SIGTERM)
    for proc in started:
        proc.stop()
