"""Bearer-token checks for the gateway's two audiences: clients and reporters.

A presented token is hashed (SHA-256) and compared, in constant time, with every
configured hash; the token itself is never stored, logged or echoed back. A
missing or wrong token is the same 401, so a caller learns nothing about which
tokens exist.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from enum import Enum

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asya.gateway.settings import GatewaySettings, token_hash

Endpoint = Callable[[Request], Awaitable[Response]]


class Audience(Enum):
    CLIENT = "client"
    """People and agents: submit, read, watch, cancel jobs."""
    REPORT = "report"
    """Sidecars and end actors: the internal progress/final endpoints."""


def presented_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def allowed(settings: GatewaySettings, audience: Audience, token: str | None) -> bool:
    if not settings.auth:
        return True
    if token is None:
        return False
    hashes = settings.client_token_hashes if audience is Audience.CLIENT else settings.report_token_hashes
    digest = token_hash(token)
    # compare against every hash (no early exit) so timing does not tell which one matched
    found = False
    for candidate in hashes:
        found |= hmac.compare_digest(digest, candidate)
    return found


def unauthorized() -> Response:
    return JSONResponse(
        {"error": "unauthorized", "message": "a valid bearer token is required"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="asya"'},
    )


def requires(audience: Audience) -> Callable[[Endpoint], Endpoint]:
    """Endpoint decorator: 401 unless the request carries a token of ``audience``."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            settings: GatewaySettings = request.app.state.gateway.settings
            if not allowed(settings, audience, presented_token(request)):
                return unauthorized()
            return await endpoint(request)

        return checked

    return wrap
