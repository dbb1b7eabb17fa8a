"""Handlers used by the tests; each exercises one runtime behaviour."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any


def echo(payload: Any) -> Any:
    return payload


def add_one(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        **payload,
        "n": payload.get("n", 0) + 1,
        "trail": [*payload.get("trail", []), os.environ.get("ASYA_ACTOR", "?")],
    }


async def async_double(payload: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"n": payload["n"] * 2}


def fan_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"i": i} for i in range(payload["n"])]


def fan_gen(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for i in range(payload["n"]):
        yield {"i": i}


async def fan_async_gen(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for i in range(payload["n"]):
        yield {"i": i}


def gated_gen(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yields one item, then waits for a file: proves items stream before the generator ends."""
    yield {"i": 0}
    gate = Path(payload["gate"])
    deadline = time.monotonic() + 30
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield {"i": 1}


def nothing(payload: Any) -> None:
    return None


def empty(payload: Any) -> list[Any]:
    return []


def boom(payload: Any) -> Any:
    raise ValueError(f"cannot score text of length {len(str(payload))}: boom")


def not_json(payload: Any) -> Any:
    return {"when": object()}


def hang(payload: Any) -> Any:
    time.sleep(3600)


def hang_if_asked(payload: dict[str, Any]) -> Any:
    if payload.get("hang"):
        time.sleep(3600)
    return payload


def die(payload: Any) -> Any:
    os._exit(17)


def die_once(payload: dict[str, Any]) -> Any:
    """Kills its own process the first time (marker file), succeeds afterwards."""
    marker = Path(payload["marker"])
    if not marker.exists():
        marker.write_text("died")
        os._exit(17)
    return {"survived": True}


def wait_for_file(payload: dict[str, Any]) -> Any:
    """Blocks until a file appears: lets a test kill the sidecar with a message in flight."""
    Path(payload["started"]).write_text("1")
    gate = Path(payload["gate"])
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"done": payload["n"]}


def big(payload: dict[str, Any]) -> dict[str, Any]:
    return {"blob": "x" * payload["bytes"]}


def noop(payload: Any) -> Any:
    return payload


class Stateful:
    """Built once per runtime: ``instances`` counts constructions."""

    instances = 0

    def __init__(self) -> None:
        type(self).instances += 1
        self.calls = 0

    def handle(self, payload: Any) -> dict[str, int]:
        self.calls += 1
        return {"instances": type(self).instances, "calls": self.calls}


def add_step(envelope: dict[str, Any]) -> dict[str, Any]:
    """Envelope mode: appends an actor to the route and advances it."""
    route = envelope["route"]
    actors = [*route["actors"], envelope["payload"]["extra"]]
    return {**envelope, "route": {**route, "actors": actors, "current": route["current"] + 1}}


def rewrite_done(envelope: dict[str, Any]) -> dict[str, Any]:
    route = envelope["route"]
    actors = ["someone-else", *route["actors"][1:]]
    return {**envelope, "route": {**route, "actors": actors, "current": route["current"] + 1}}


def forget_to_advance(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope


def fail_after_gen(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yields ``n`` items, then raises: a fan-out that breaks half-way."""
    for i in range(payload["n"]):
        yield {"i": i}
    raise RuntimeError(f"source ran dry after {payload['n']} items")


async def fail_after_async_gen(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for i in range(payload["n"]):
        await asyncio.sleep(0)
        yield {"i": i}
    raise RuntimeError(f"source ran dry after {payload['n']} items")


def as_one_output(payload: Any) -> list[Any]:
    """Passes its payload on as the single output, whatever it is: ``None`` alone would end the route early."""
    return [payload]


def which_thread(payload: dict[str, Any]) -> dict[str, Any]:
    """Says where the runtime called it (the loop's thread or a pool thread), after ``sleep_s`` seconds."""
    import threading

    time.sleep(payload.get("sleep_s", 0))
    return {"thread": threading.current_thread().name}
