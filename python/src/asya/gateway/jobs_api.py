"""The client REST endpoints: create, read, list, stream and cancel jobs.

``POST /jobs`` takes ``{"route": {"actors": [...], "metadata"?: {...}},
"payload": ..., "headers"?: {...}}`` and builds the SPEC §2 envelope whose id is
the new job id. The ``{"tool": ..., "params": ...}`` form answers 501 until tool
configuration exists (a later step of the gateway issue).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asya.contracts import EnvelopeError, TransportError, encode_envelope, queue_name, validate_envelope
from asya.gateway.auth import Audience, requires
from asya.gateway.context import Gateway
from asya.gateway.store import STATUSES, IdempotencyConflict
from asya.gateway.streaming import stream_response

MAX_LIMIT = 200
MAX_KEY_LENGTH = 200


def invalid(field: str, message: str, status: int = 422) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "field": field, "message": message}, status)


def not_found(job_id: str) -> JSONResponse:
    return JSONResponse({"error": "not found", "message": f"no job {job_id!r}"}, 404)


def links(request: Request, job_id: str) -> dict[str, str]:
    base = str(request.url_for("get_job", id=job_id))
    return {"self": base, "stream": base + "/stream", "cancel": base + "/cancel"}


def build_envelope(body: Any, job_id: str) -> dict[str, Any]:
    """The first envelope of a job from a ``POST /jobs`` body (``EnvelopeError`` names the bad field)."""
    if not isinstance(body, dict):
        raise EnvelopeError("body", "must be a JSON object")
    unknown = sorted(set(body) - {"route", "payload", "headers"})
    if unknown:
        raise EnvelopeError(unknown[0], "unknown field (expected route, payload, headers)")
    route = body.get("route")
    if not isinstance(route, dict):
        raise EnvelopeError("route", "required, must be an object with 'actors'")
    if "current" in route and route["current"] != 0:
        raise EnvelopeError("route.current", "a new job starts at step 0")
    env: dict[str, Any] = {
        "id": job_id,
        "route": {**route, "current": 0},
        "headers": body.get("headers", {}),
        "payload": body.get("payload"),
    }
    if "payload" not in body:
        raise EnvelopeError("payload", "required (any JSON value, null included)")
    validate_envelope(env)
    return env


@requires(Audience.CLIENT)
async def create_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        return invalid("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return invalid("body", "must be a JSON document")
    if isinstance(body, dict) and "tool" in body:
        return JSONResponse(
            {"error": "not implemented", "message": "tools are not configured on this gateway yet; send a route"},
            501,
        )
    job_id = uuid.uuid4().hex
    try:
        envelope = build_envelope(body, job_id)
    except EnvelopeError as exc:
        return invalid(exc.field, exc.reason)
    # The same request retried must hash the same: canonical JSON, not the raw bytes.
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    first = envelope["route"]["actors"][0]

    async def publish() -> None:
        await gw.transport.publish(queue_name(first), encode_envelope(envelope))

    try:
        job, created = await gw.store.create(
            envelope, tool=None, idempotency_key=key, request_hash=digest, publish=publish
        )
    except IdempotencyConflict as exc:
        return JSONResponse(
            {
                "error": "conflict",
                "message": "this Idempotency-Key was used with a different request",
                "job_id": exc.job_id,
            },
            409,
        )
    except TransportError as exc:
        gw.log_publish_failure(first, exc)
        return JSONResponse(
            {"error": "unavailable", "message": f"could not publish to {queue_name(first)}; nothing was stored"}, 503
        )
    job["links"] = links(request, job["id"])
    return JSONResponse(job, 201 if created else 200, headers={"Location": job["links"]["self"]})


@requires(Audience.CLIENT)
async def get_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    job_id = request.path_params["id"]
    return _job_or_404(request, job_id, await gw.store.get(job_id))


@requires(Audience.CLIENT)
async def list_jobs(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        return invalid("status", f"one of {', '.join(sorted(STATUSES))}")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        return invalid("limit", "must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return invalid("limit", f"must be between 1 and {MAX_LIMIT}")
    cursor: int | None = None
    if q.get("cursor"):
        try:
            cursor = int(q["cursor"])
        except ValueError:
            return invalid("cursor", "not a cursor this gateway returned")
        if not 0 < cursor < 2**63:
            return invalid("cursor", "not a cursor this gateway returned")
    jobs, next_cursor = await gw.store.page(status=status, limit=limit, cursor=cursor)
    return JSONResponse({"jobs": jobs, "next_cursor": str(next_cursor) if next_cursor is not None else None})


@requires(Audience.CLIENT)
async def stream_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    return await stream_response(request, request.path_params["id"], gw.store, gw.hub, gw.settings.keepalive_s)


@requires(Audience.CLIENT)
async def cancel_job(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    job_id = request.path_params["id"]
    return _job_or_404(request, job_id, await gw.store.cancel(job_id))


def _job_or_404(request: Request, job_id: str, job: dict[str, Any] | None) -> Response:
    if job is None:
        return not_found(job_id)
    job["links"] = links(request, job_id)
    return JSONResponse(job)
