"""happy-end: store every finished envelope, exactly once per id (SPEC section 7).

Run as ``python -m asya.crew happy-end``. Consumes ``asya-happy-end``, where
sidecars send envelopes whose route is done (or that a handler ended early)
and writes each to ``<prefix>/<YYYY-MM-DD>/<last actor>/<id>.json`` in the
configured store (a claim-checked payload fetched back, so results are whole),
then reports ``succeeded`` to the gateway.

The ack comes only after the store confirmed the write: while S3 is down the
message stays unacknowledged and happy-end keeps trying (with backoff, lease
extended by the engine; on shutdown it goes back to the broker), and because
the key depends only on the id a duplicate delivery overwrites the same object
instead of storing a second copy. Bytes that are not an envelope
cannot be stored as a result; they take the dead-letter path instead of being
dropped.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from asya import storage, transports
from asya.contracts import DlqReason
from asya.contracts import metrics as names
from asya.contracts.envelope import DLQ_NAME, HAPPY_END, encode_envelope
from asya.crew import deadletter
from asya.crew.consuming import Crew, pause, serve
from asya.crew.settings import CrewSettings
from asya.engine import Verdict, failures
from asya.engine.reporting import SUCCEEDED
from asya.storage import claimcheck

log = logging.getLogger("asya.crew.happy_end")

STORE_RETRY_BASE_S = 0.5
"""First pause before storing a result again after the store failed; doubles per failure."""


def last_actor(env: dict[str, Any]) -> str:
    """The actor that finished ``env``: the last of the route, or the one that ended it early."""
    route = env.get("route")
    if isinstance(route, dict):
        actors, cur = route.get("actors"), route.get("current")
        if isinstance(actors, list) and actors:
            idx = cur if isinstance(cur, int) and 0 <= cur < len(actors) else len(actors) - 1
            name = actors[idx]
            if isinstance(name, str) and name:
                return name
    return "unknown"


async def _whole(crew: Crew, env: dict[str, Any], body: bytes) -> bytes:
    """The bytes to store: ``body``, or the envelope with a claim-checked payload fetched back."""
    if claimcheck.reference(env.get("payload")) is None:
        return body
    try:
        return encode_envelope(await claimcheck.resolve(env, crew.store))
    except claimcheck.ClaimCheckError as exc:
        # the reference stays usable for whoever can reach that store: keep it rather than lose the result
        log.warning("storing %s with its payload reference unresolved: %s", env["id"], exc)
        return body


async def handle(crew: Crew, delivery: transports.Delivery) -> Verdict:
    """Store one final envelope and report it; while the store is down, keep it and try again."""
    try:
        env = json.loads(delivery.body)
        if not isinstance(env, dict) or not isinstance(env.get("id"), str) or not env["id"]:
            raise ValueError("not an envelope object with a non-empty string id")
    except ValueError as exc:
        record = failures.unparseable(delivery.body, HAPPY_END, f"happy-end could not parse it: {exc}")
        await deadletter.dead_letter(crew, record, HAPPY_END, DlqReason.UNPARSABLE, str(exc))
        return Verdict.ACK
    actor = last_actor(env)
    failed = 0
    while True:
        try:
            body = await _whole(crew, env, delivery.body)
            uri = await storage.put_once(crew.store, storage.RESULTS_PREFIX, time.time(), actor, env["id"], body)
            break
        except Exception as exc:
            # Held, not given back: an outage must not spend the delivery limit and turn results into
            # dead letters. The engine keeps the lease alive; shutdown hands it back to the broker.
            failed += 1
            crew.metrics.inc(names.CREW_STORE_FAILURES, actor=actor)
            log.warning("could not store %s (attempt %d): %s; trying again", env["id"], failed, exc)
            await pause(crew, min(crew.settings.store_retry_max_s, STORE_RETRY_BASE_S * 2 ** (failed - 1)))
            if crew.stopping.is_set():
                return Verdict.GIVE_BACK
    crew.metrics.inc(names.CREW_RESULTS_STORED, actor=actor)
    await crew.reporter.final(SUCCEEDED, env, actor=actor, result=env.get("payload"), uri=uri)
    return Verdict.ACK


async def main(settings: CrewSettings) -> None:
    """Run happy-end until SIGTERM."""
    await serve(handle, HAPPY_END, settings, extra_queues=(DLQ_NAME,))
