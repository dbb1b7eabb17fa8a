"""The dead-letter path shared by error-end and happy-end: store, publish, report.

A dead letter is written to storage first (``errors/<YYYY-MM-DD>/<actor>/<id>.json``,
the inspectable, replayable record ``asya dlq`` reads) and then published to the
``asya-dlq`` queue (for alerting and external consumers). The caller acknowledges
its input only after both succeeded, so a crash in between replays the whole
path and the idempotent key keeps storage at one copy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from asya import storage
from asya.contracts import headers as h
from asya.contracts import metrics as names
from asya.contracts.envelope import DLQ_NAME
from asya.contracts.errors import ErrorCode, PermanentError
from asya.crew import reporting
from asya.crew.consuming import Crew
from asya.crew.retrying import DlqReason


def wrap_unparsable(body: bytes, receiver: str, problem: str) -> dict[str, Any]:
    """Wrap raw bytes nobody could read as an error message, like the sidecar does.

    The id is derived from the bytes, so a redelivery of the same garbage maps to
    the same dead letter instead of a second one.
    """
    try:
        text: str = body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode()
        encoding = "base64"
    return {
        "id": "unparsable-" + hashlib.sha256(body).hexdigest()[:24],
        "route": {"actors": [receiver], "current": 0},
        "headers": {},
        "payload": {
            "error": ErrorCode.MSG_PARSING_ERROR.value,
            "details": {"message": problem, "type": "EnvelopeError", "traceback": ""},
            "original_body": text,
            "original_body_encoding": encoding,
        },
    }


def error_summary(record: dict[str, Any]) -> dict[str, Any]:
    """``{error, message, type}`` of an error record, for reports and ``asya dlq list``."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return {"error": None, "message": None, "type": None}
    details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
    assert isinstance(details, dict)
    return {"error": payload.get("error"), "message": details.get("message"), "type": details.get("type")}


def _notice(record: dict[str, Any], uri: str) -> bytes:
    summary = error_summary(record)
    slim = {k: record.get(k) for k in ("id", "parent_id", "route", "headers", "dlq")}
    slim["payload"] = {"error": summary["error"], "details": {"message": summary["message"], "type": summary["type"]}}
    slim["stored_uri"] = uri
    return json.dumps(slim, ensure_ascii=False, default=str).encode()


async def dead_letter(crew: Crew, record: dict[str, Any], actor: str, reason: DlqReason, detail: str) -> str:
    """Store ``record`` under ``errors/`` and publish it to ``asya-dlq``; return the stored URI."""
    now = time.time()
    env_id = record.get("id")
    if not isinstance(env_id, str) or not env_id:
        # derived from the content (before we stamp it) so a redelivery maps to the same key
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
        env_id = record["id"] = "noid-" + digest[:24]
    hdrs = record.get("headers")
    record["headers"] = dict(hdrs) if isinstance(hdrs, dict) else {}
    record["headers"][h.DLQ_REASON] = reason.value
    record["headers"][h.DLQ_AT] = now
    record.setdefault("dlq", {})
    if isinstance(record["dlq"], dict):
        record["dlq"].update({"reason": reason.value, "detail": detail, "actor": actor})
    body = json.dumps(record, ensure_ascii=False, default=str).encode()
    uri = await storage.put_once(crew.store, storage.ERRORS_PREFIX, now, actor, env_id, body)
    try:
        await crew.transport.publish(DLQ_NAME, body)
    except PermanentError:
        # too big for the queue: the stored record is complete, the queue gets a notice pointing at it
        await crew.transport.publish(DLQ_NAME, _notice(record, uri))
    crew.metrics.inc(names.CREW_DEAD_LETTERS, actor=actor, reason=reason.value)
    await crew.reporter.report(
        reporting.FAILED, record, actor=actor, reason=reason.value, error=error_summary(record), uri=uri
    )
    return uri
