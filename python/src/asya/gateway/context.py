"""What one gateway process holds while it serves: pool, hub, transport.

Opened in the app's lifespan, in dependency order, and closed in reverse. A
database whose schema is not at the version this code expects is a start-up
error ("run migrate"), never a half-working server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from asya.gateway import migrations
from asya.gateway.metrics import GatewayMetrics
from asya.gateway.notify import EventHub
from asya.gateway.settings import GatewaySettings
from asya.gateway.store import JobStore, create_pool
from asya.transports import Transport, create

log = logging.getLogger("asya.gateway")


class SchemaNotCurrent(RuntimeError):
    pass


class Gateway:
    def __init__(self, settings: GatewaySettings, pool: asyncpg.Pool, hub: EventHub, transport: Transport) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.store = JobStore(pool, self.metrics)
        self.hub = hub
        self.transport = transport
        self.publish_failures = 0

    def log_publish_failure(self, actor: str, exc: Exception) -> None:
        self.publish_failures += 1
        log.warning("publish to the queue of %s failed: %s", actor, exc)


@contextlib.asynccontextmanager
async def open_gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url, settings.pool_size)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            version = await migrations.current_version(conn)
        if version != migrations.latest_version():
            raise SchemaNotCurrent(
                f"database schema is at version {version}, this gateway needs {migrations.latest_version()}: "
                "run `python -m asya.gateway migrate`"
            )
        hub = EventHub(
            settings.database_url, check_s=settings.listen_check_s, check_timeout_s=settings.listen_check_timeout_s
        )
        await hub.start()
        stack.push_async_callback(hub.close)
        transport = create(settings.transport)
        await transport.connect()
        stack.push_async_callback(transport.close)
        yield Gateway(settings, pool, hub, transport)
