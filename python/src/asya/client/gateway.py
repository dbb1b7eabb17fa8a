"""``Client``: the gateway's REST API for people and scripts (synchronous, on httpx).

Used by ``asya jobs`` and by anyone's Python code::

    with Client("http://gateway:8080", token="...") as c:
        job = c.submit(route=["prep", "infer"], payload={"text": "hi"})
        for event in c.watch(job["id"]):
            print(event.kind, event.data)

Where the gateway is and who we are come from the arguments or, failing that,
``ASYA_GATEWAY_URL`` (the same gateway address sidecars report to) and
``ASYA_CLIENT_TOKEN``. Not ``ASYA_GATEWAY_TOKEN``: that is the *report* token
sidecars send, which the client endpoints refuse by design.

``watch`` is the one call that retries by itself: a job stream that breaks
(connection cut, gateway restarted, its database restarted) is resumed with
``Last-Event-ID`` set to the last event handed to the caller, so the caller
sees every event once, in order, until ``final``. Everything else raises at the
first failure: a ``POST`` retried blindly could create a job twice (pass an
``idempotency_key`` and retry yourself, the gateway then answers the same job).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from asya.client import errors
from asya.client.events import Event, EventParser

URL_ENV = "ASYA_GATEWAY_URL"
TOKEN_ENV = "ASYA_CLIENT_TOKEN"

_RECONNECTABLE = (httpx.TransportError, httpx.DecodingError)
"""Failures of a stream's connection (refused, reset, read timeout, truncated chunk): worth resuming."""


@dataclasses.dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``: newest first; pass ``next_cursor`` back for the next page (None: last page)."""

    jobs: list[dict[str, Any]]
    next_cursor: str | None


class Client:
    """A connection to one gateway; close it (or use ``with``) when done."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        stream_read_timeout_s: float = 60.0,
        reconnect_for_s: float = 60.0,
        reconnect_delay_s: float | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """``stream_read_timeout_s``: silence (no event, no keep-alive) after which a stream counts as broken;
        ``reconnect_for_s``: how long ``watch`` keeps trying to resume before giving up;
        ``reconnect_delay_s``: first wait before resuming (default: what the gateway's ``retry`` asks)."""
        base = (url or os.environ.get(URL_ENV, "")).rstrip("/")
        if not base:
            raise errors.ClientError(f"no gateway URL: pass url= (or --url) or set {URL_ENV}")
        if not base.startswith(("http://", "https://")):
            raise errors.ClientError(f"gateway URL must start with http:// or https://, not {base!r}")
        self.url = base
        secret = os.environ.get(TOKEN_ENV, "") if token is None else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.stream_read_timeout_s = stream_read_timeout_s
        self.reconnect_for_s = reconnect_for_s
        self.reconnect_delay_s = reconnect_delay_s
        self.reconnects = 0
        """How many times ``watch`` resumed a broken stream (over this client's life)."""
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout_s)
        self._http.headers.update(headers)
        self._timeout_s = timeout_s

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # --- jobs ---

    def submit(
        self,
        route: Sequence[str] | None = None,
        payload: Any = None,
        *,
        tool: str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        deadline: float | datetime.datetime | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Create a job from a route and a payload, or from a tool and its params; the job as the gateway stored it.

        ``deadline`` (Unix seconds, or an aware ``datetime``) or ``timeout_s`` (seconds from now, counted by the
        gateway) bound the whole job; the gateway puts it in the envelope, and sidecars enforce it.
        """
        if (route is None) == (tool is None):
            raise ValueError("give either route (with payload) or tool (with params)")
        body: dict[str, Any]
        if tool is not None:
            body = {"tool": tool, "params": dict(params or {})}
        else:
            assert route is not None
            if isinstance(route, str):
                raise ValueError("route is a sequence of actor names, not one string")
            route_body: dict[str, Any] = {"actors": list(route)}
            if metadata:
                route_body["metadata"] = dict(metadata)
            body = {"route": route_body, "payload": payload}
            if headers:
                body["headers"] = dict(headers)
        if isinstance(deadline, datetime.datetime):
            if deadline.tzinfo is None:
                raise ValueError("deadline needs a time zone (a naive datetime is ambiguous)")
            body["deadline"] = deadline.isoformat()
        elif deadline is not None:
            body["deadline"] = deadline
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        return self._json("POST", "/jobs", json=body, headers=extra)

    def call_tool(self, tool: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /mcp/tools/call``: the onboarding guide's request shape; the gateway's answer (job id, stream URL)."""
        return self._json("POST", "/mcp/tools/call", json={"tool": tool, "params": dict(params or {})})

    def get(self, job_id: str) -> dict[str, Any]:
        """The job: status, route, progress, result or error, its input payload."""
        return self._json("GET", _job_path(job_id))

    def list(
        self, *, status: str | None = None, tool: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> JobPage:
        """One page of jobs, newest first, optionally only those with ``status`` (or made by ``tool``)."""
        query = {k: str(v) for k, v in {"status": status, "tool": tool, "limit": limit, "cursor": cursor}.items() if v}
        data = self._json("GET", "/jobs", params=query)
        cursor_out = data.get("next_cursor")
        return JobPage(jobs=list(data.get("jobs") or []), next_cursor=str(cursor_out) if cursor_out else None)

    def iter_jobs(
        self, *, status: str | None = None, tool: str | None = None, page_size: int = 200
    ) -> Iterator[dict[str, Any]]:
        """Every job (newest first), following the cursor ``page_size`` jobs at a time."""
        cursor: str | None = None
        while True:
            page = self.list(status=status, tool=tool, limit=page_size, cursor=cursor)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Mark the job cancelled (a finished job keeps its status); the job afterwards."""
        return self._json("POST", _job_path(job_id) + "/cancel")

    def watch(self, job_id: str, *, after: int = 0) -> Iterator[Event]:
        """The job's events from after event id ``after`` (0: all of them) up to and including ``final``.

        A broken stream is resumed with ``Last-Event-ID`` for up to ``reconnect_for_s`` of failed attempts in a
        row; then ``ConnectionFailedError``. 401, 404 and 422 raise at once.
        """
        last = after
        delay_s = self.reconnect_delay_s
        outage_since: float | None = None
        attempt = 0
        path = _job_path(job_id) + "/stream"
        timeout = httpx.Timeout(self._timeout_s, read=self.stream_read_timeout_s)
        while True:
            problem: str
            try:
                headers = {"Last-Event-ID": str(last), "Accept": "text/event-stream"}
                with self._http.stream("GET", self.url + path, headers=headers, timeout=timeout) as response:
                    if response.status_code != 200:
                        response.read()
                        error = _error(response)
                        if not isinstance(error, errors.UnavailableError):
                            raise error
                        problem = error.message
                    else:
                        parser = EventParser()
                        for line in response.iter_lines():
                            event = parser.feed(line)
                            if parser.retry_ms is not None and self.reconnect_delay_s is None:
                                delay_s = parser.retry_ms / 1000
                            if event is None:
                                continue
                            last, outage_since, attempt = event.id, None, 0
                            yield event
                            if event.final:
                                return
                        problem = "the gateway ended the stream before the final event"
            except _RECONNECTABLE as exc:
                problem = f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            outage_since = now if outage_since is None else outage_since
            if now - outage_since > self.reconnect_for_s:
                raise errors.ConnectionFailedError(
                    f"lost the stream of job {job_id} after event {last} and could not resume it within "
                    f"{self.reconnect_for_s:g}s: {problem}"
                )
            time.sleep(min((delay_s if delay_s is not None else 1.0) * 2**attempt, 10.0))
            attempt += 1
            self.reconnects += 1

    # --- plumbing ---

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, self.url + path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.ConnectionFailedError(f"cannot reach the gateway at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        data = response.json()
        if not isinstance(data, dict):
            raise errors.GatewayError(response.status_code, f"expected a JSON object, got {type(data).__name__}")
        return data


def _job_path(job_id: str) -> str:
    if not job_id:
        raise ValueError("job id is empty")
    return "/jobs/" + quote(job_id, safe="")


def _error(response: httpx.Response) -> errors.GatewayError:
    try:
        body: object = response.json()
    except ValueError:
        body = None
    return errors.from_response(response.status_code, body, response.text)
