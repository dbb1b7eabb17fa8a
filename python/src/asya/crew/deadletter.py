"""The dead-letter path of the end actors: store, publish, report.

A dead letter is written to storage first (``errors/<YYYY-MM-DD>/<actor>/<id>.json``,
the inspectable, replayable record ``asya dlq`` reads) and then published to the
``asya-dlq`` queue (for alerting and external consumers). The caller acknowledges
its input only after both succeeded, so a crash in between replays the whole
path and the idempotent key keeps storage at one copy. The record shapes
(unparseable wrapper, slim notice) are the engine's, shared with the sidecar.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from asya import storage
from asya.contracts import DlqReason, PermanentError
from asya.contracts import headers as h
from asya.contracts import metrics as names
from asya.crew.context import Crew
from asya.engine import failures
from asya.engine.reporting import FAILED


def filing_actor(record: dict[str, Any], default: str) -> str:
    """The actor a dead letter is filed under: where it failed (``details.actor``) when the record says."""
    payload = record.get("payload")
    details = payload.get("details") if isinstance(payload, dict) else None
    actor = details.get("actor") if isinstance(details, dict) else None
    return actor if isinstance(actor, str) and actor else default


async def dead_letter(crew: Crew, record: dict[str, Any], actor: str, reason: DlqReason, detail: str) -> str:
    """Store ``record`` under ``errors/`` and publish it to ``asya-dlq``; return the stored URI."""
    now = time.time()
    actor = filing_actor(record, actor)
    env_id = record.get("id")
    if not isinstance(env_id, str) or not env_id:
        # derived from the content (before we stamp it) so a redelivery maps to the same key
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
        env_id = record["id"] = "noid-" + digest[:24]
    hdrs = record.get("headers")
    record["headers"] = dict(hdrs) if isinstance(hdrs, dict) else {}
    record["headers"][h.DLQ_REASON] = reason.value
    record["headers"][h.DLQ_AT] = now
    if not isinstance(record.get("dlq"), dict):
        record["dlq"] = {}
    record["dlq"].update({"reason": reason.value, "detail": detail, "actor": actor})
    body = json.dumps(record, ensure_ascii=False, default=str).encode()
    uri = await storage.put_once(crew.store, storage.ERRORS_PREFIX, now, actor, env_id, body)
    dlq = crew.settings.engine(actor).dlq
    try:
        await crew.transport.publish(dlq, body)
    except PermanentError:
        # too big for the queue: the stored record is complete, the queue gets a notice pointing at it
        await crew.transport.publish(dlq, failures.notice(record, uri))
    crew.metrics.inc(names.CREW_DEAD_LETTERS, actor=actor, reason=reason.value)
    await crew.reporter.final(FAILED, record, actor=actor, reason=reason.value, error=failures.summary(record), uri=uri)
    return uri
