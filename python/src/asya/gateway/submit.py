"""Job submission, shared by every entry point: ``POST /jobs``, ``POST /mcp/tools/call``, MCP ``tools/call``.

Each entry point turns its request into a ``JobRequest`` (``from_route_body``
or ``from_tool``) and hands it to ``submit``, so the envelope, the idempotency
hash, the deadline header and the publish-before-commit rule exist once. A
request that cannot become a job raises ``Rejected``, which carries the HTTP
status and the field to blame; the MCP side maps the same exception to a
JSON-RPC error.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from asya import tracing
from asya.contracts import EnvelopeError, TransportError, encode_envelope, headers, queue_name, validate_envelope
from asya.contracts.envelope import stamp_published
from asya.gateway.context import Gateway
from asya.gateway.store import IdempotencyConflict
from asya.gateway.tools import ArgumentError, Tool

MAX_KEY_LENGTH = 200
ROUTE_FIELDS = frozenset({"route", "payload", "headers", "deadline", "timeout_s"})
TOOL_FIELDS = frozenset({"tool", "params", "deadline", "timeout_s"})


class Rejected(Exception):
    """This request does not become a job; ``status`` is the HTTP answer, ``field`` the culprit."""

    def __init__(self, status: int, error: str, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "message": self.message, **self.extra}
        if self.field is not None:
            out["field"] = self.field
        return out


def invalid(field: str, message: str) -> Rejected:
    return Rejected(422, "invalid request", message, field=field)


@dataclasses.dataclass(frozen=True)
class JobRequest:
    envelope: dict[str, Any]
    tool: str | None
    request_hash: str
    """SHA-256 of the request body as canonical JSON: a retried request hashes the same."""


def canonical_hash(body: object) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def deadline_of(body: Mapping[str, Any], *, now: float | None = None) -> float | None:
    """Unix seconds from ``deadline`` (RFC 3339 or Unix seconds) or ``timeout_s``; None when neither is given."""
    now = time.time() if now is None else now
    if "deadline" in body and "timeout_s" in body:
        raise invalid("timeout_s", "give either deadline or timeout_s, not both")
    if "timeout_s" in body:
        timeout = body["timeout_s"]
        if not _is_number(timeout) or not 0 < timeout < 10**9:
            raise invalid("timeout_s", "must be a positive number of seconds")
        return now + float(timeout)
    if "deadline" not in body:
        return None
    raw = body["deadline"]
    if _is_number(raw):
        try:
            deadline = float(raw)
        except OverflowError:
            raise invalid("deadline", "is not a time this gateway can represent") from None
    elif isinstance(raw, str):
        try:
            parsed = datetime.datetime.fromisoformat(raw)
        except ValueError:
            raise invalid("deadline", "must be an RFC 3339 timestamp (2026-01-31T12:00:00Z) or Unix seconds") from None
        if parsed.tzinfo is None:
            raise invalid("deadline", "needs a time zone offset (Z or +hh:mm)")
        deadline = parsed.timestamp()
    else:
        raise invalid("deadline", "must be an RFC 3339 timestamp or Unix seconds")
    if not math.isfinite(deadline):
        raise invalid("deadline", "must be a finite time")
    if deadline <= now:
        raise invalid("deadline", "is already past")
    return deadline


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unknown(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(unknown[0], f"unknown field (expected {', '.join(sorted(allowed))})")


def from_route_body(body: object) -> JobRequest:
    """``{"route": {"actors", "metadata"?}, "payload", "headers"?, "deadline"?|"timeout_s"?}``."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    _unknown(body, ROUTE_FIELDS)
    route = body.get("route")
    if not isinstance(route, dict):
        raise invalid("route", "required, must be an object with 'actors'")
    if "current" in route and route["current"] != 0:
        raise invalid("route.current", "a new job starts at step 0")
    if "payload" not in body:
        raise invalid("payload", "required (any JSON value, null included)")
    extra_headers = body.get("headers", {})
    if not isinstance(extra_headers, dict):
        raise invalid("headers", "must be an object")
    return _request({**route, "current": 0}, body["payload"], dict(extra_headers), body, tool=None)


def from_tool(tools: Mapping[str, Tool], body: object, *, params_field: str = "params") -> JobRequest:
    """``{"tool": NAME, "params": {...}, "deadline"?|"timeout_s"?}``: params checked against the tool's schema.

    ``params_field`` is what error paths are prefixed with (``params.items[2].text``).
    """
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    _unknown(body, TOOL_FIELDS | {params_field})
    name = body.get("tool")
    if not isinstance(name, str) or not name:
        raise invalid("tool", "required, the name of a configured tool")
    tool = tools.get(name)
    if tool is None:
        raise Rejected(404, "unknown tool", f"no tool {name!r} on this gateway", field="tool", tools=sorted(tools))
    params = body.get(params_field, {})
    try:
        tool.check(params)
    except ArgumentError as exc:
        path = params_field + ("" if not exc.path else exc.path if exc.path.startswith("[") else f".{exc.path}")
        raise invalid(path, exc.message) from None
    route: dict[str, Any] = {"actors": list(tool.actors), "current": 0}
    if tool.metadata is not None:
        route["metadata"] = dict(tool.metadata)
    return _request(route, params, {}, body, tool=tool.name)


def _request(
    route: dict[str, Any], payload: Any, extra_headers: dict[str, Any], body: Mapping[str, Any], *, tool: str | None
) -> JobRequest:
    deadline = deadline_of(body)
    if deadline is not None:
        extra_headers[headers.DEADLINE] = deadline
    envelope = {"id": uuid.uuid4().hex, "route": route, "headers": extra_headers, "payload": payload}
    try:
        validate_envelope(envelope)
    except EnvelopeError as exc:
        raise invalid(exc.field, exc.reason) from None
    return JobRequest(envelope=envelope, tool=tool, request_hash=canonical_hash(body))


def check_key(key: str | None) -> None:
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise invalid("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")


async def submit(gw: Gateway, job: JobRequest, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """Store the job and publish its envelope to the first actor; (job view, created).

    ``created`` is False when ``idempotency_key`` already made this same job.
    A key bound to another request → ``Rejected(409)``; a publish the broker
    did not confirm → ``Rejected(503)`` with nothing stored.
    """
    check_key(idempotency_key)
    envelope = job.envelope
    first = envelope["route"]["actors"][0]

    async def publish() -> None:
        if tracing.ENABLED:
            await _traced_publish(gw, envelope, queue_name(first))
            return
        await gw.transport.publish(queue_name(first), encode_envelope(stamp_published(envelope)))

    try:
        return await gw.store.create(
            envelope, tool=job.tool, idempotency_key=idempotency_key, request_hash=job.request_hash, publish=publish
        )
    except IdempotencyConflict as exc:
        raise Rejected(
            409, "conflict", "this Idempotency-Key was used with a different request", job_id=exc.job_id
        ) from None
    except TransportError as exc:
        gw.log_publish_failure(first, exc)
        raise Rejected(503, "unavailable", f"could not publish to {queue_name(first)}; nothing was stored") from None


def links(request: Request | None, job_id: str) -> dict[str, str]:
    """Where to read, stream and cancel the job (absolute when the request is known)."""
    base = str(request.url_for("get_job", id=job_id)) if request is not None else f"/jobs/{job_id}"
    return {"self": base, "stream": base + "/stream", "cancel": base + "/cancel"}


def receipt(request: Request | None, job: Mapping[str, Any]) -> dict[str, Any]:
    """The short answer of a tool call: id, status and where to follow it."""
    urls = links(request, job["id"])
    return {
        "job_id": job["id"],
        "status": job["status"],
        "tool": job.get("tool"),
        "status_url": urls["self"],
        "stream_url": urls["stream"],
        "cancel_url": urls["cancel"],
    }


async def _traced_publish(gw: Gateway, envelope: dict[str, Any], queue: str) -> None:
    """The job's first publish as the trace's root span; its context goes into the envelope's headers."""
    tracing.setup("gateway")
    span = tracing.start_publish(envelope, gw.settings.transport.kind, queue)
    try:
        await gw.transport.publish(queue, encode_envelope(stamp_published(envelope)))
    except BaseException as exc:
        tracing.fail(span, exc)
        raise
    finally:
        span.end()
