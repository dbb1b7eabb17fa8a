"""The envelope: Asya's message format on every queue (SPEC section 2).

An envelope is kept as a plain ``dict`` so that fields this version does not
know (added by a newer producer, or by Asya 0.1.x) survive every hop untouched.
``validate_envelope`` checks the contract and raises ``EnvelopeError`` naming
the offending field; everything else here is a small helper over that dict.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from asya.contracts.errors import EnvelopeError
from asya.contracts.headers import PUBLISHED_AT

Envelope = dict[str, Any]

HAPPY_END = "happy-end"
ERROR_END = "error-end"
END_ACTORS = frozenset({HAPPY_END, ERROR_END})
QUEUE_PREFIX = "asya-"
DLQ_NAME = "asya-dlq"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def schema_path() -> Path:
    """Path of the JSON Schema (draft 2020-12) shipped with the package."""
    return Path(__file__).with_name("envelope.schema.json")


def queue_name(actor: str) -> str:
    """Queue that actor ``actor`` consumes: ``asya-<actor>``."""
    return QUEUE_PREFIX + actor


def validate_actor_name(name: object, field: str = "actor") -> str:
    """Return ``name`` if it is a DNS-1123 label, else raise ``EnvelopeError``."""
    if not isinstance(name, str) or not _DNS1123_LABEL.match(name):
        raise EnvelopeError(
            field, f"{name!r} is not a valid actor name (lowercase letters, digits and '-', at most 63)"
        )
    return name


def validate_envelope(obj: object) -> Envelope:
    """Check ``obj`` against the envelope contract and return it unchanged."""
    if not isinstance(obj, dict):
        raise EnvelopeError("envelope", f"must be a JSON object, got {type(obj).__name__}")
    env_id = obj.get("id")
    if not isinstance(env_id, str) or not env_id:
        raise EnvelopeError("id", "required, must be a non-empty string")
    parent_id = obj.get("parent_id")
    if parent_id is not None and not isinstance(parent_id, str):
        raise EnvelopeError("parent_id", "must be a string when present")
    if "payload" not in obj:
        raise EnvelopeError("payload", "required (any JSON value, null included)")
    headers = obj.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise EnvelopeError("headers", "must be an object when present")
    route = obj.get("route")
    if not isinstance(route, dict):
        raise EnvelopeError("route", "required, must be an object with 'actors' and 'current'")
    actors = route.get("actors")
    if not isinstance(actors, list) or not actors:
        raise EnvelopeError("route.actors", "required, must be a non-empty list of actor names")
    for i, actor in enumerate(actors):
        validate_actor_name(actor, f"route.actors[{i}]")
        if actor in END_ACTORS:
            raise EnvelopeError(f"route.actors[{i}]", f"{actor!r} is an end actor and is implicit")
    current = route.get("current")
    if not isinstance(current, int) or isinstance(current, bool):
        raise EnvelopeError("route.current", "required, must be an integer")
    if not 0 <= current <= len(actors):
        raise EnvelopeError("route.current", f"{current} is out of range for a route of {len(actors)} actor(s)")
    metadata = route.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise EnvelopeError("route.metadata", "must be an object when present")
    return obj


def decode_envelope(body: bytes) -> Envelope:
    """Parse and validate a queue message body."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("body", f"not valid UTF-8 JSON: {exc}") from None
    return validate_envelope(obj)


def encode_envelope(env: Envelope) -> bytes:
    """Serialise an envelope for a queue (compact UTF-8 JSON)."""
    return json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode()


def is_route_done(env: Envelope) -> bool:
    """True when every actor of the route has processed the envelope."""
    route = env["route"]
    return bool(route["current"] >= len(route["actors"]))


def current_actor(env: Envelope) -> str | None:
    """The actor that must process ``env`` next, or None when the route is done."""
    route = env["route"]
    actors: list[str] = route["actors"]
    cur: int = route["current"]
    return actors[cur] if cur < len(actors) else None


def next_destination(env: Envelope) -> str:
    """Actor whose queue receives ``env``: its current actor, or happy-end when done."""
    return current_actor(env) or HAPPY_END


def stamp_published(env: Envelope) -> Envelope:
    """Set ``x-asya-published-at`` to now, just before ``env`` is published (queue-wait metric).

    The headers object is replaced, not changed: a caller's envelope (a shallow copy of it, or one
    that shares its headers with fan-out siblings) keeps its own.
    """
    hdrs = env.get("headers")
    env["headers"] = {**(hdrs if isinstance(hdrs, dict) else {}), PUBLISHED_AT: round(time.time(), 6)}
    return env
