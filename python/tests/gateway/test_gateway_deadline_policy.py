"""error-end's policy under a job deadline (pure: ``retrying.decide`` on plain dicts, a given clock)."""

from __future__ import annotations

import datetime
import random
from typing import Any

from asya.contracts import headers as h
from asya.crew import retrying
from asya.crew.settings import RetrySettings
from asya.sidecar import deadlines

NOW = 1_800_000_000.0


def error_message(code: str, deadline: float | None, **details: Any) -> dict[str, Any]:
    hdrs: dict[str, Any] = {h.RETRY_MAX: 5, h.RETRY_BACKOFF_BASE_S: 1.0, h.RETRY_BACKOFF_MAX_S: 1.0}
    if deadline is not None:
        hdrs[h.DEADLINE] = deadline
    return {
        "id": "j1",
        "route": {"actors": ["a", "b"], "current": 1},
        "headers": hdrs,
        "payload": {"error": code, "details": {"message": "m", **details}, "original_payload": {"n": 1}},
    }


def decide(msg: dict[str, Any]) -> retrying.Decision:
    return retrying.decide(msg, RetrySettings(jitter=0.0), random.Random(1), now=NOW)


def test_deadline_exceeded_is_dead_lettered_whatever_the_budget() -> None:
    d = decide(error_message("deadline_exceeded", NOW + 3600))
    assert isinstance(d, retrying.DeadLetter) and d.reason is retrying.DlqReason.DEADLINE_EXCEEDED
    assert d.actor == "b"


def test_a_retry_that_would_start_after_the_deadline_is_not_scheduled() -> None:
    d = decide(error_message("processing_error", NOW + 0.5))  # the 1 s backoff ends past it
    assert isinstance(d, retrying.DeadLetter) and d.reason is retrying.DlqReason.DEADLINE_EXCEEDED
    assert "after the job deadline" in d.detail and "processing_error on attempt 1 of 5" in d.detail
    # the same error with time to spare is retried, and without a (readable) deadline too
    for deadline in (NOW + 10, None, "soon"):
        retry = decide(error_message("processing_error", deadline))  # type: ignore[arg-type]
        assert isinstance(retry, retrying.Retry) and retry.attempt == 2


def test_the_sidecars_details_say_when_where_and_what_to_do() -> None:
    env = {"id": "j1", "route": {"actors": ["a", "b", "c"], "current": 1}, "payload": None}
    before = deadlines.exceeded_details(env, "b", NOW - 2, NOW, called=False, timeout_s=30)
    deadline_iso = datetime.datetime.fromtimestamp(NOW - 2, datetime.UTC).isoformat(timespec="milliseconds")
    for part in (deadline_iso, "2.000s before envelope j1", "actor 'b'", "not sent to the handler"):
        assert part in before["message"], (part, before["message"])
    assert "x-asya-deadline=1799999998.000" in before["message"]
    assert "route.current=1 of 3 steps" in before["message"] and "Give the job more time" in before["message"]
    assert before["retryable"] is False and before["dlq_reason"] == "deadline_exceeded"
    during = deadlines.exceeded_details(env, "b", NOW, NOW + 0.1, called=True, timeout_s=30)
    assert "while actor 'b'" in during["message"] and "own timeout is 30s" in during["message"]
