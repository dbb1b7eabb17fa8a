"""Internal control feed the sidecars poll: ``GET /internal/cancellations?after=<cursor>``.

Sidecars drop a cancelled job's envelopes at the next hop without asking the
gateway per message: each keeps a set of cancelled job ids in memory
(``asya.engine.cancellation``) and refreshes it from this endpoint every half
second, with the report token. An answer is one bounded page:
``{"cancelled": [ids], "cursor": "<n>", "more": bool}``; the poller passes
``cursor`` back as ``after`` and asks again at once while ``more`` is true.
Without ``after`` the page starts with the cancellations of the last hour (as
long as sidecars remember one). Ids may repeat across pages (see
``JobStore.cancellations``); pollers keep a set.

Polling rather than a long-poll or SSE feed: the answer is one index range scan
(migration 2), any replica can serve any poller since the cursor lives in the
database, a gateway restart or failover costs a poller nothing but one failed
request, and no connection per sidecar stays open on the gateway.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asya.gateway.auth import Audience, requires
from asya.gateway.context import Gateway

PAGE = 1000
"""Most ids in one answer (and the default page)."""


def _bad(field: str, message: str) -> Response:
    return JSONResponse({"error": "invalid request", "field": field, "message": message}, 422)


@requires(Audience.REPORT)
async def cancellations(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    q = request.query_params
    after: int | None = None
    if q.get("after"):
        try:
            after = int(q["after"])
        except ValueError:
            return _bad("after", "not a cursor this gateway returned")
        if not 0 <= after < 2**63:
            return _bad("after", "not a cursor this gateway returned")
    try:
        limit = int(q.get("limit", str(PAGE)))
    except ValueError:
        return _bad("limit", "must be an integer")
    if not 1 <= limit <= PAGE:
        return _bad("limit", f"must be between 1 and {PAGE}")
    ids, cursor, more = await gw.store.cancellations(after, limit)
    return JSONResponse({"cancelled": ids, "cursor": str(cursor), "more": more})
