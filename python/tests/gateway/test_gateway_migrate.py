"""Migrations (idempotent, serialised, atomic), settings from env, and the `python -m asya.gateway` process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from fixtures.postgres import PostgresServer
from gateway_helpers import settings

from asya.gateway import migrations
from asya.gateway.context import SchemaNotCurrent, open_gateway
from asya.gateway.settings import GatewaySettings, SettingsError, token_hash
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def empty_dsn(postgres_server: PostgresServer) -> str:
    return await asyncio.to_thread(postgres_server.fresh_database)


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_migrate_applies_once_and_concurrent_migrators_serialise(empty_dsn: str) -> None:
    results = await asyncio.gather(*(migrations.migrate(empty_dsn) for _ in range(5)))
    every = [v for v, _, _ in migrations.MIGRATIONS]
    assert sorted(results) == [[], [], [], [], every]  # one applied them, the others waited and found them done
    assert await migrations.migrate(empty_dsn) == []
    assert {"jobs", "job_events", "schema_migrations"} <= await tables(empty_dsn)


async def test_a_failing_migration_leaves_the_schema_as_it_was(empty_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await migrations.migrate(empty_dsn)
    # the first new version is fine on its own; the next fails: one run applies all or nothing
    latest = migrations.latest_version()
    broken = [
        *migrations.MIGRATIONS,
        (latest + 1, "fine", "CREATE TABLE half_done (x int)"),
        (latest + 2, "broken", "SELECT nope()"),
    ]
    monkeypatch.setattr(migrations, "MIGRATIONS", broken)
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrations.migrate(empty_dsn)
    assert "half_done" not in await tables(empty_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await migrations.current_version(conn) == latest
    finally:
        await conn.close()


async def test_the_gateway_refuses_an_unmigrated_database(empty_dsn: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaNotCurrent, match="migrate"):
        async with open_gateway(settings(empty_dsn, TransportSettings(kind="local", url=str(tmp_path)))):
            pass


def test_settings_from_env_hash_tokens_and_refuse_an_open_gateway_by_accident(tmp_path: Path) -> None:
    dsn = "postgresql://u:secret-pw@h/db"
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# clients\nfile-token\nsha256:{hashlib.sha256(b'hashed-token').hexdigest()}\n")
    s = GatewaySettings.from_env(
        {
            "ASYA_GATEWAY_DATABASE_URL": dsn,
            "ASYA_GATEWAY_TOKENS": "env-token, other",
            "ASYA_GATEWAY_TOKENS_FILE": str(tokens_file),
            "ASYA_GATEWAY_REPORT_TOKEN": "rep",
            "ASYA_TRANSPORT": "rabbitmq",
            "ASYA_TRANSPORT_URL": "amqp://x/",
            "ASYA_TRANSPORT_OPT_QUEUE_PREFIX": "p-",
        }
    )
    assert s.client_token_hashes == {token_hash(t) for t in ("env-token", "other", "file-token", "hashed-token")}
    assert s.report_token_hashes == {token_hash("rep")}
    assert s.transport.kind == "rabbitmq" and s.transport.queue_prefix == "p-"
    assert "secret-pw" not in repr(s) and "env-token" not in repr(s)
    with pytest.raises(SettingsError, match="ASYA_GATEWAY_DATABASE_URL"):
        GatewaySettings.from_env({})
    with pytest.raises(SettingsError, match="no client token"):
        GatewaySettings.from_env({"ASYA_GATEWAY_DATABASE_URL": dsn})
    with pytest.raises(SettingsError, match="no report token"):
        GatewaySettings.from_env({"ASYA_GATEWAY_DATABASE_URL": dsn, "ASYA_GATEWAY_TOKENS": "a"})
    with pytest.raises(SettingsError, match="64 hex"):
        GatewaySettings.from_env({"ASYA_GATEWAY_DATABASE_URL": dsn, "ASYA_GATEWAY_TOKENS": "sha256:abc"})
    with pytest.raises(SettingsError, match="ASYA_GATEWAY_AUTH"):
        GatewaySettings.from_env({"ASYA_GATEWAY_DATABASE_URL": dsn, "ASYA_GATEWAY_AUTH": "maybe"})
    open_ = GatewaySettings.from_env({"ASYA_GATEWAY_DATABASE_URL": dsn, "ASYA_GATEWAY_AUTH": "off"})
    assert open_.auth is False


def test_migrate_and_serve_as_processes_keep_tokens_out_of_the_logs(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = postgres_server.fresh_database()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client_token = "process-client-token-31337"
    env = {
        **os.environ,
        "ASYA_GATEWAY_DATABASE_URL": dsn,
        "ASYA_GATEWAY_TOKENS": f"sha256:{token_hash(client_token)}",
        "ASYA_GATEWAY_REPORT_TOKEN": "process-report-token-4242",
        "ASYA_GATEWAY_HOST": "127.0.0.1",
        "ASYA_GATEWAY_PORT": str(port),
        "ASYA_TRANSPORT": "local",
        "ASYA_TRANSPORT_URL": str(tmp_path / "queues"),
    }
    cmd = [sys.executable, "-m", "asya.gateway"]
    first = subprocess.run([*cmd, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False)
    every = [v for v, _, _ in migrations.MIGRATIONS]
    assert first.returncode == 0 and f"applied migrations: {every}" in first.stdout, first.stderr
    again = subprocess.run([*cmd, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and "schema is current" in again.stdout
    no_token = {k: v for k, v in env.items() if k != "ASYA_GATEWAY_TOKENS"}
    refused = subprocess.run([*cmd, "serve"], env=no_token, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "ASYA_GATEWAY_TOKENS" in refused.stderr
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*cmd, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {client_token}"}
        created = httpx.post(f"{base}/jobs", json={"route": {"actors": ["a"]}, "payload": 1}, headers=headers)
        assert created.status_code == 201
        wrong = httpx.get(f"{base}/jobs", headers={"Authorization": "Bearer guessed-token-777"})
        assert wrong.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert "POST /jobs" in text  # the access log is on...
    for secret in (client_token, "guessed-token-777", "process-report-token-4242", dsn.split("@")[0]):
        assert secret not in text  # ...and shows no token or password
