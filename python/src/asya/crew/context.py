"""What a crew handler works with: the engine's transport, store, reporter and metrics."""

from __future__ import annotations

import asyncio
import dataclasses

from asya import storage, transports
from asya.crew.settings import CrewSettings
from asya.engine import Metrics, Reporter


@dataclasses.dataclass
class Crew:
    """What a handler may use: the open transport, the store, the reporter, metrics, settings."""

    settings: CrewSettings
    transport: transports.Transport
    store: storage.ObjectStore
    reporter: Reporter
    metrics: Metrics
    stopping: asyncio.Event
    """Set when shutdown began: handlers cut their waits short and give messages back."""
    known_queues: set[str] = dataclasses.field(default_factory=set)
    """Queues already ensured by this process (error-end declares a retry target once)."""
