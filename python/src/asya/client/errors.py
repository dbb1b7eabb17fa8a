"""What the client raises: one exception per gateway answer a caller decides on.

``Client`` turns every non-2xx answer into one of these, carrying the gateway's
own words (``message``) and, for a 422, the field it named (``route.actors[1]``),
so a CLI or a script can print something a person can act on. Tokens never
appear in these messages: they are built from the gateway's JSON body, which
never echoes one.
"""

from __future__ import annotations

from typing import Any

from asya.contracts.errors import AsyaError


class ClientError(AsyaError):
    """Root of everything ``asya.client`` raises on purpose."""


class GatewayError(ClientError):
    """The gateway answered with an error status; ``status``, ``message`` and the raw ``body`` say which."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.message = message
        self.body = body or {}
        super().__init__(f"gateway answered {status}: {message}")


class UnauthorizedError(GatewayError):
    """401: no token, or one the gateway does not accept (both look the same on purpose)."""


class NotFoundError(GatewayError):
    """404: no such job."""


class ConflictError(GatewayError):
    """409: the Idempotency-Key was used with a different request; ``job_id`` is the job it belongs to."""

    @property
    def job_id(self) -> str | None:
        value = self.body.get("job_id")
        return value if isinstance(value, str) else None


class InvalidRequestError(GatewayError):
    """422: the gateway refused the request; ``field`` names what was wrong (``params.text``, ``route.actors[1]``)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(status, message, body)
        field = self.body.get("field")
        self.field: str | None = field if isinstance(field, str) else None
        if self.field:
            self.args = (f"gateway answered {status}: {self.field}: {message}",)


class UnavailableError(GatewayError):
    """503: the gateway cannot do it right now (database down, broker refused the publish); safe to retry."""


class NotSupportedError(GatewayError):
    """501: this gateway does not offer that yet (for example tools, on a gateway without tool configuration)."""


class ConnectionFailedError(ClientError):
    """The gateway could not be reached (refused, reset, timed out) and retrying did not help."""


class PublishError(ClientError):
    """``publish`` could not hand an envelope to the broker; ``confirmed`` say how many before it went in."""

    def __init__(self, message: str, confirmed: int = 0) -> None:
        self.confirmed = confirmed
        super().__init__(message)


class UnroutableError(PublishError):
    """The broker returned the envelope: no queue by that name (a misspelt actor?). Nothing was stored."""

    def __init__(self, queue: str, confirmed: int = 0) -> None:
        self.queue = queue
        super().__init__(
            f"no queue {queue!r} on the broker: the envelope was returned, not stored "
            "(is the actor name right, and is the actor deployed?)",
            confirmed,
        )


_BY_STATUS: dict[int, type[GatewayError]] = {
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
    501: NotSupportedError,
    503: UnavailableError,
}


def from_response(status: int, body: object, text: str) -> GatewayError:
    """The exception for an error answer; ``body`` is the decoded JSON (anything), ``text`` the raw fallback."""
    data = body if isinstance(body, dict) else {}
    message = data.get("message")
    if not isinstance(message, str) or not message:
        message = str(data.get("error") or text.strip()[:300] or f"HTTP {status}")
    return _BY_STATUS.get(status, GatewayError)(status, message, data)
