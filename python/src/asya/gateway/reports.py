"""Internal endpoints the sidecars and end actors post to (``asya.engine.reporting``).

``POST /jobs/{id}/progress`` and ``POST /jobs/{id}/final``, with the report
token. The body's shape is the reporter's; the path id wins over the body's.
Answers are small and quick (one short transaction): the reporter retries what
the gateway did not take in the background and drops it only after a bound, so
a slow answer here would only grow the sidecars' backlogs.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asya.gateway.auth import Audience, requires
from asya.gateway.context import Gateway
from asya.gateway.store import FAILED, RETRYING, SUCCEEDED

FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, RETRYING})
MAX_ID_LENGTH = 512
"""Job ids travel in NOTIFY payloads (8000 bytes at most) and URLs."""


async def _report(request: Request, kind: str) -> Response:
    gw: Gateway = request.app.state.gateway
    job_id = request.path_params["id"]
    if not 0 < len(job_id) <= MAX_ID_LENGTH:
        return JSONResponse({"error": "invalid request", "field": "id", "message": "1 to 512 characters"}, 422)
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "invalid request", "field": "body", "message": "must be a JSON object"}, 422)
    status = body.get("status")
    if kind == "final" and not (isinstance(status, str) and status in FINAL_STATUSES):  # {} is unhashable
        return JSONResponse(
            {"error": "invalid request", "field": "status", "message": "one of succeeded, failed, retrying"}, 422
        )
    body["id"] = job_id
    outcome = await gw.store.report(kind, job_id, body)
    return JSONResponse(
        {"id": job_id, "applied": outcome["applied"], "status": outcome["job"]["status"]},
        200,
    )


@requires(Audience.REPORT)
async def progress(request: Request) -> Response:
    return await _report(request, "progress")


@requires(Audience.REPORT)
async def final(request: Request) -> Response:
    return await _report(request, "final")
