"""A small HTTP endpoint that plays the gateway for ``asya dev run``.

Sidecars POST ``/jobs/<id>/progress`` after each finished delivery and the end
actors POST ``/jobs/<id>/final`` once an envelope is stored or dead-lettered.
Reports are at-least-once (a process killed between its report and its ack
reports again after the redelivery) and may be lost (killed after the ack,
before the report left), so the tracker keeps *sets of ids*, never counters:

- ``known``: every id this run produced (the inputs, the ``outputs`` a report
  lists, fan-out children learned from their own reports or stored files);
- ``terminal``: ids with a stored result or a dead letter;
- ``split``: ids whose delivery turned into other ids (fan-out), so they are
  finished once their children are.

An id is *open* while it is known and neither terminal nor split; repeating a
report cannot change a set. Ids the run never produced are *foreign*: counted
and shown, never mixed into the run's state. Because a lost report leaves a
gap, ``devrun`` decides completion with these sets *and* with the queues
(drained and stable), and fills gaps from the stored files
(``resolve_from_files``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from asya.contracts import END_ACTORS

_SUCCESS = ("success", "ended_early")
_GIVEN_BACK = ("requeued", "returned")
"""Statuses after which the same envelope is processed again at the same step (not a duplicate)."""


@dataclasses.dataclass
class Progress:
    """What the live view renders and the summary reports (counts derived from the id sets)."""

    inputs: int = 0
    open: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    foreign: int = 0
    """Distinct ids reported that this run never produced."""
    processed_twice: int = 0
    """Envelopes a step finished successfully more than once (redeliveries after a crash)."""
    repeated_reports: int = 0
    by_actor: dict[str, collections.Counter[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class RunState:
    """The id sets and the rules that update them (no I/O: unit-testable on its own)."""

    def __init__(self) -> None:
        self.progress = Progress()
        self.inputs: set[str] = set()
        self.known: set[str] = set()
        self.terminal: dict[str, str] = {}
        self.split: set[str] = set()
        self.open_ids: set[str] = set()
        self.parent: dict[str, str] = {}
        self.foreign_ids: set[str] = set()
        self.version = 0
        """Bumped by every report, ours or not: 'no change for a while' is part of completion."""
        self._successes: collections.Counter[tuple[str, str, object]] = collections.Counter()
        self._finals: set[tuple[str, str]] = set()

    # --- queries ---

    def is_ours(self, env_id: str, parent_id: object = None) -> bool:
        if env_id in self.known or (isinstance(parent_id, str) and parent_id in self.known):
            return True
        head = env_id
        while "." in head:  # fan-out children are <id>.<n>, grandchildren <id>.<n>.<m>
            head = head.rsplit(".", 1)[0]
            if head in self.known:
                return True
        return False

    def root_of(self, env_id: str) -> str:
        """The input an id descends from (itself for inputs); by parent links, else by the dotted prefix."""
        seen = set()
        while env_id not in self.inputs and env_id not in seen:
            seen.add(env_id)
            parent = self.parent.get(env_id)
            if parent is None and "." in env_id:
                parent = env_id.rsplit(".", 1)[0]
            if parent is None:
                break
            env_id = parent
        return env_id

    # --- updates ---

    def expect(self, ids: Iterable[str]) -> None:
        for env_id in ids:
            self.inputs.add(env_id)
            self._learn(env_id, None)
        self._refresh()

    def _admit(self, event: dict[str, Any]) -> str | None:
        """The id of a report about one of our envelopes (learned on the way), or None for a foreign one."""
        self.version += 1
        env_id, parent_id = str(event.get("id")), event.get("parent_id")
        if not self.is_ours(env_id, parent_id):
            self.foreign_ids.add(env_id)
            self._refresh()
            return None
        self._learn(env_id, parent_id)
        return env_id

    def on_progress(self, event: dict[str, Any]) -> None:
        env_id = self._admit(event)
        if env_id is None:
            return
        actor, status = str(event.get("actor")), str(event.get("status"))
        self.progress.by_actor[actor][status] += 1
        if status in _SUCCESS:
            self._successes[(env_id, actor, event.get("step"))] += 1
        if actor in END_ACTORS:
            # should the shared engine report crew deliveries too: their outcome is the final report
            self._refresh()
            return
        outputs = event.get("outputs")
        if isinstance(outputs, list):
            others = [str(o) for o in outputs if str(o) != env_id]
            for child in others:
                self._learn(child, env_id)
            if env_id in (str(o) for o in outputs) or status in _GIVEN_BACK:
                self._unsplit(env_id)
            elif status != "dead_letter":
                self._split(env_id)
        elif status in _SUCCESS and int(event.get("sent", 1)) > 1:
            # an older sidecar without `outputs`: a fan-out whose children we learn from their own
            # reports or files; the queue check covers the ones not seen yet
            self._split(env_id)
        if status == "dead_letter":  # the engine sent it to asya-dlq itself (delivery limit)
            self._terminate(env_id, "dlq")
        self._refresh()

    def on_final(self, event: dict[str, Any]) -> None:
        env_id = self._admit(event)
        if env_id is None:
            return
        status = event.get("status")
        if (env_id, str(status)) in self._finals:
            self.progress.repeated_reports += 1
        if status == "succeeded":
            self._terminate(env_id, "result")
        elif status == "failed":
            if (env_id, "failed") not in self._finals:
                self.progress.failures.append(event)
            self._terminate(env_id, "dead letter")
        elif status == "retrying":
            self.progress.retrying += 1
        self._finals.add((env_id, str(status)))
        self._refresh()

    def resolve_from_files(self, results: Iterable[str], dead_letters: Iterable[str]) -> None:
        """Stored files are the record of truth: they fill in for finals that never arrived."""
        for kind, ids in (("result", results), ("dead letter", dead_letters)):
            for env_id in ids:
                if not self.is_ours(env_id):
                    continue
                self._learn(env_id, None)
                self._terminate(env_id, kind)
                # a stored child proves its ancestors fanned out, even when that report was lost
                head = self.parent.get(env_id) or (env_id.rsplit(".", 1)[0] if "." in env_id else None)
                while head is not None and head in self.known and head not in self.terminal:
                    self._split(head)
                    head = self.parent.get(head) or (head.rsplit(".", 1)[0] if "." in head else None)
        self._refresh()

    # --- internals ---

    def _learn(self, env_id: str, parent_id: object) -> None:
        if isinstance(parent_id, str) and parent_id and parent_id != env_id:
            self.parent.setdefault(env_id, parent_id)
        if env_id in self.known:
            return
        self.known.add(env_id)
        if env_id not in self.terminal and env_id not in self.split:
            self.open_ids.add(env_id)

    def _terminate(self, env_id: str, kind: str) -> None:
        self.terminal.setdefault(env_id, kind)  # the first ending counts; a duplicate never flips it
        self.open_ids.discard(env_id)

    def _split(self, env_id: str) -> None:
        self.split.add(env_id)
        self.open_ids.discard(env_id)

    def _unsplit(self, env_id: str) -> None:
        # the same id was published again (e.g. a fan-out failed half way and went to error-end)
        self.split.discard(env_id)
        if env_id not in self.terminal:
            self.open_ids.add(env_id)

    def _refresh(self) -> None:
        p = self.progress
        p.inputs = len(self.inputs)
        p.open = len(self.open_ids)
        p.succeeded = sum(1 for kind in self.terminal.values() if kind == "result")
        p.failed = sum(1 for kind in self.terminal.values() if kind != "result")
        p.foreign = len(self.foreign_ids)
        p.processed_twice = sum(1 for n in self._successes.values() if n > 1)


class Tracker:
    """The HTTP side: feeds reports into a ``RunState`` and wakes whoever waits on ``changed``."""

    def __init__(self) -> None:
        self.state = RunState()
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def progress(self) -> Progress:
        return self.state.progress

    def expect(self, ids: Iterable[str]) -> None:
        self.state.expect(ids)
        self.changed.set()

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.post("/jobs/{id}/progress", self._progress), web.post("/jobs/{id}/final", self._final)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _progress(self, request: web.Request) -> web.Response:
        return await self._take(request, self.state.on_progress)

    async def _final(self, request: web.Request) -> web.Response:
        return await self._take(request, self.state.on_final)

    async def _take(self, request: web.Request, handler: Any) -> web.Response:
        try:
            event = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
        if not isinstance(event, dict) or not event.get("id"):
            return web.json_response({"ok": False, "error": "report needs an id"}, status=400)
        handler(event)
        self.changed.set()
        return web.json_response({"ok": True})
