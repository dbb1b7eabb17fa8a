"""error-end's decision: retry later, or dead-letter now, and why (pure functions).

``decide()`` is called by ``error_end`` for every error message and by tests
directly; it touches no broker or store, so the whole policy is testable on
plain dicts. Budget semantics: ``x-asya-retry-max`` is the number of attempts
a step may take in total (first try included, like ``maxAttempts`` in the CRD
and botocore's ``max_attempts``); ``x-asya-retry-attempt`` says which attempt
just failed. The count is per step (``x-asya-retry-step``), so retries spent on
one actor do not eat the budget of the next.

A job deadline (``x-asya-deadline``) overrides the budget: ``deadline_exceeded``
is never retried, and a retry that could only start after the deadline is not
scheduled; both become dead letters with reason ``deadline_exceeded``.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import random
import time
from typing import Any

from asya.contracts import headers as h
from asya.contracts.envelope import Envelope, validate_envelope
from asya.contracts.errors import DlqReason, EnvelopeError, ErrorCode
from asya.crew.settings import RetrySettings


@dataclasses.dataclass(frozen=True)
class Retry:
    """Send ``envelope`` back to ``actor``'s queue after ``delay_s`` seconds."""

    actor: str
    envelope: Envelope
    delay_s: float
    attempt: int


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """Store and publish to the DLQ; ``actor`` names the storage folder."""

    actor: str
    reason: DlqReason
    detail: str


Decision = Retry | DeadLetter

_REASONS = frozenset(r.value for r in DlqReason)

__all__ = ["DeadLetter", "Decision", "DlqReason", "Retry", "decide", "failing_actor", "reset_budget"]


def failing_actor(msg: dict[str, Any]) -> str:
    """Actor at ``route.current`` of an error message, or ``unknown`` when the route is unusable."""
    route = msg.get("route")
    if isinstance(route, dict):
        actors, cur = route.get("actors"), route.get("current")
        if isinstance(actors, list) and isinstance(cur, int) and 0 <= cur < len(actors):
            name = actors[cur]
            if isinstance(name, str) and name:
                return name
        if isinstance(actors, list) and actors and isinstance(actors[-1], str):
            return actors[-1]
    return "unknown"


def _number(value: object, default: float, kind: type[float] | type[int]) -> float:
    # headers may have crossed a broker that stringified them
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return kind(value)
    except ValueError:
        return default


def _int(value: object, default: int) -> int:
    return int(_number(value, default, int))


def _float(value: object, default: float) -> float:
    return _number(value, default, float)


def _step(delay_s: float) -> float:
    return 0.01 if delay_s < 1 else 0.1 if delay_s < 10 else 1.0 if delay_s < 60 else 10.0 if delay_s < 600 else 60.0


def quantize(delay_s: float) -> float:
    """Round a delay to 10 ms below 1 s, 100 ms below 10 s, 1 s below 1 min, 10 s below 10 min, 1 min above.

    Brokers that delay with one queue per delay value (RabbitMQ TTL queues, which
    are kept, not expired) then reuse a bounded set of queues instead of declaring
    one per jittered value: about 350 for delays up to an hour. Jitter keeps its
    purpose at this resolution.
    """
    step = _step(delay_s)
    return round(round(delay_s / step) * step, 3)


def backoff_delay(failed_attempt: int, base_s: float, max_s: float, jitter: float, rng: random.Random) -> float:
    """Exponential backoff ``base * 2**(n-1)`` capped at ``max_s``, spread by +/- ``jitter``, quantized."""
    raw = min(max_s, base_s * 2.0 ** max(0, failed_attempt - 1))
    spread = raw * jitter * (2 * rng.random() - 1)
    return quantize(max(0.0, min(max_s, raw + spread)))


def likely_delays(settings: RetrySettings) -> list[float]:
    """Every delay the default policy can produce (the quantized grid over each attempt's jitter band)."""
    out: set[float] = set()
    for failed in range(1, max(1, settings.max_attempts)):
        raw = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** (failed - 1))
        low, high = (
            quantize(raw * (1 - settings.jitter)),
            quantize(min(settings.backoff_max_s, raw * (1 + settings.jitter))),
        )
        d = low
        while d <= high:
            out.add(d)
            d = quantize(d + _step(d))
    return sorted(out)


def original_envelope(msg: dict[str, Any]) -> Envelope:
    """The envelope that failed: the error message with ``payload.original_payload`` restored.

    Every other field (route, headers, unknown top-level fields) is carried over
    untouched, which is what "headers and unknown fields survive every hop" needs.
    """
    env = {k: v for k, v in msg.items() if k != "payload"}
    env["payload"] = msg["payload"]["original_payload"]
    env["headers"] = dict(msg.get("headers") or {})
    return env


def job_deadline(hdrs: dict[str, Any]) -> float | None:
    """The ``x-asya-deadline`` header as Unix seconds; None when absent or unreadable (then it cannot bind)."""
    value = _float(hdrs.get(h.DEADLINE), math.nan)
    return value if math.isfinite(value) else None


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="milliseconds")


def decide(
    msg: dict[str, Any], settings: RetrySettings, rng: random.Random | None = None, now: float | None = None
) -> Decision:
    """Retry or dead-letter the error message ``msg`` (SPEC section 5 shape); ``now`` is Unix time (tests)."""
    rng = rng or random.Random()
    actor = failing_actor(msg)
    payload = msg.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
        return DeadLetter(actor, DlqReason.MALFORMED, "payload.error missing: not an error-end message")
    code: str = payload["error"]
    details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
    assert isinstance(details, dict)
    exc_type = str(details.get("type") or "")
    if code == ErrorCode.DEADLINE_EXCEEDED.value:
        # the job's time is up: another attempt could only run late, whatever budget is left
        why = str(details.get("message") or f"{code}: the job deadline passed")
        return DeadLetter(actor, DlqReason.DEADLINE_EXCEEDED, why)
    if code == ErrorCode.CONNECTION_ERROR.value:
        # the sidecar requeues connection errors itself and only sends one here after
        # ASYA_MAX_DELIVERIES deliveries: the handler kills its process every time
        return DeadLetter(actor, DlqReason.CRASH_LOOP, f"runtime connection lost on every delivery: {code}")
    named = details.get("dlq_reason")
    if details.get("retryable") is False and named in _REASONS:
        # the engine gave up on it (delivery limit, a fault while processing): keep its reason
        return DeadLetter(actor, DlqReason(named), str(details.get("message") or named))
    if details.get("retryable") is False:
        return DeadLetter(actor, DlqReason.NON_RETRYABLE, f"{code} marked non-retryable by the sender")
    # the runtime reports qualified type names (``pkg.mod.ValidationError``): match either form
    short_type = exc_type.rsplit(".", 1)[-1]
    if code in settings.non_retryable or (exc_type and {exc_type, short_type} & settings.non_retryable):
        return DeadLetter(actor, DlqReason.NON_RETRYABLE, f"{code} ({exc_type or 'no type'}) is not retryable")
    if "original_payload" not in payload:
        return DeadLetter(actor, DlqReason.MALFORMED, "payload.original_payload missing: nothing to retry")
    try:
        env = original_envelope(msg)
        validate_envelope(env)
    except EnvelopeError as exc:
        return DeadLetter(actor, DlqReason.MALFORMED, f"cannot rebuild the envelope: {exc}")
    if actor == "unknown" or env["route"]["current"] >= len(env["route"]["actors"]):
        return DeadLetter(actor, DlqReason.MALFORMED, "route.current does not point at an actor")

    hdrs: dict[str, Any] = env["headers"]
    step = env["route"]["current"]
    same_step = _int(hdrs.get(h.RETRY_STEP), step) == step
    failed_attempt = _int(hdrs.get(h.RETRY_ATTEMPT), 1) if same_step else 1
    budget = max(1, _int(hdrs.get(h.RETRY_MAX), settings.max_attempts))
    if failed_attempt >= budget:
        return DeadLetter(
            actor, DlqReason.BUDGET_EXHAUSTED, f"{code} on attempt {failed_attempt} of {budget}: budget spent"
        )
    delay = backoff_delay(
        failed_attempt,
        _float(hdrs.get(h.RETRY_BACKOFF_BASE_S), settings.backoff_base_s),
        _float(hdrs.get(h.RETRY_BACKOFF_MAX_S), settings.backoff_max_s),
        settings.jitter,
        rng,
    )
    deadline = job_deadline(hdrs)
    if deadline is not None:
        start = (time.time() if now is None else now) + delay
        if start > deadline:
            return DeadLetter(
                actor,
                DlqReason.DEADLINE_EXCEEDED,
                f"{code} on attempt {failed_attempt} of {budget} at actor {actor!r}; a retry would start at "
                f"{_iso(start)}, after the job deadline {_iso(deadline)} ({h.DEADLINE}), so it was not scheduled",
            )
    hdrs[h.RETRY_ATTEMPT] = failed_attempt + 1
    hdrs[h.RETRY_MAX] = budget
    hdrs[h.RETRY_STEP] = step
    return Retry(actor, env, delay, failed_attempt + 1)


def reset_budget(env: Envelope) -> Envelope:
    """A copy of ``env`` with retry counters and dead-letter marks removed (``asya dlq replay``)."""
    out = dict(env)
    hdrs = {k: v for k, v in (env.get("headers") or {}).items() if k not in _RESET}
    hdrs[h.REPLAYED] = _int((env.get("headers") or {}).get(h.REPLAYED), 0) + 1
    out["headers"] = hdrs
    return out


_RESET = frozenset({h.RETRY_ATTEMPT, h.RETRY_STEP, h.RETRY_NOT_BEFORE, h.DLQ_REASON, h.DLQ_AT, h.HOPS})
