"""The shapes of failure records: error-end messages, unparseable bodies, DLQ notices.

Pure functions, no I/O. The sidecar's routing, the crew's end actors and the
engine's own safety nets (delivery limit, unexpected exceptions) all build
their records here, so a dead letter looks the same wherever it came from.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

from asya.contracts import DlqReason, Envelope, ErrorCode


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why the engine takes a delivery away from its processor."""

    reason: DlqReason
    """``delivery_limit`` or ``processor_error``."""
    code: str
    """Error code for the record (an ``ErrorCode`` value)."""
    message: str
    """What a person should know and do."""
    type: str
    """Exception type name, or the engine's own label."""

    def details(self) -> dict[str, Any]:
        return complete_details(
            {"message": self.message, "type": self.type, "retryable": False, "dlq_reason": self.reason.value}
        )


def complete_details(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` with the three fields every error record carries (SPEC section 3)."""
    out: dict[str, Any] = {"message": "", "type": "", "traceback": ""}
    out.update(details)
    return out


def error_message(source: Envelope, code: str, details: dict[str, Any]) -> Envelope:
    """The error-end message for ``source``: its route (current = failing step), headers and original payload kept."""
    out: Envelope = {k: v for k, v in source.items() if k != "payload"}
    out["payload"] = {"error": code, "details": complete_details(details), "original_payload": source.get("payload")}
    return out


def unparseable(body: bytes, actor: str, problem: str, *, field: str = "envelope") -> Envelope:
    """Wrap bytes that are not a valid envelope so error-end and the DLQ keep them as evidence.

    The id is derived from the bytes, so a redelivered copy maps to the same dead letter.
    """
    try:
        original: dict[str, Any] = {"original_body": body.decode("utf-8"), "original_body_encoding": "utf-8"}
    except UnicodeDecodeError:
        original = {"original_body": base64.b64encode(body).decode(), "original_body_encoding": "base64"}
    return {
        "id": "invalid-" + hashlib.sha256(body).hexdigest()[:24],
        "route": {"actors": [actor], "current": 0},
        "headers": {},
        "payload": {
            "error": ErrorCode.MSG_PARSING_ERROR.value,
            "details": complete_details(
                {
                    "message": f"message received by actor {actor!r} is not a valid envelope: {problem}",
                    "type": "EnvelopeError",
                    "field": field,
                }
            ),
            **original,
        },
    }


def record_for(body: bytes, actor: str, failure: Failure) -> Envelope:
    """The error record of a delivery the engine gives up on: the envelope when it parses, else the wrapper."""
    try:
        env = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        env = None
    if not isinstance(env, dict) or not isinstance(env.get("id"), str) or not env["id"]:
        return unparseable(body, actor, failure.message)
    if not isinstance(env.get("route"), dict):
        env["route"] = {"actors": [actor], "current": 0}
    return error_message(env, failure.code, failure.details())


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """``{error, message, type}`` of an error record, for reports and ``asya dlq list``."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return {"error": None, "message": None, "type": None}
    details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
    assert isinstance(details, dict)
    return {"error": payload.get("error"), "message": details.get("message"), "type": details.get("type")}


def notice(record: dict[str, Any], uri: str | None) -> bytes:
    """A slim DLQ message (ids, route, headers, the error in words) for a record too big for the queue."""
    s = summary(record)
    slim = {k: record.get(k) for k in ("id", "parent_id", "route", "headers", "dlq")}
    slim["payload"] = {"error": s["error"], "details": {"message": s["message"], "type": s["type"]}}
    slim["stored_uri"] = uri
    return json.dumps(slim, ensure_ascii=False, default=str).encode()
