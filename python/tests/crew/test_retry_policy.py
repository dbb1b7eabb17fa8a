"""error-end's decision table (``asya.crew.retrying``), on plain dicts."""

from __future__ import annotations

import random

import pytest
from crew_helpers import error_message

from asya.contracts import headers as h
from asya.crew import retrying
from asya.crew.settings import CrewSettings, RetrySettings

POLICY = RetrySettings(max_attempts=3, backoff_base_s=1.0, backoff_max_s=300.0, jitter=0.0)


def test_first_failure_is_retried_with_the_budget_written_into_headers() -> None:
    d = retrying.decide(error_message("e", ["a", "b"], 1, original_payload=[1]), POLICY)
    assert isinstance(d, retrying.Retry)
    assert (d.actor, d.attempt, d.delay_s) == ("b", 2, 1.0)
    assert d.envelope["payload"] == [1]
    assert d.envelope["headers"] == {h.RETRY_ATTEMPT: 2, h.RETRY_MAX: 3, h.RETRY_STEP: 1}


def test_backoff_doubles_and_is_capped() -> None:
    rng = random.Random(0)
    assert [retrying.backoff_delay(n, 1.0, 5.0, 0.0, rng) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    spread = {retrying.backoff_delay(1, 1.0, 5.0, 0.5, rng) for _ in range(200)}
    assert min(spread) >= 0.5 and max(spread) <= 1.5 and len(spread) > 10


def test_delays_are_quantized_so_delay_queues_are_reused() -> None:
    assert retrying.quantize(0.1234) == 0.12
    assert retrying.quantize(3.456) == 3.5
    assert retrying.quantize(42.4) == 42.0
    assert retrying.quantize(123.4) == 120.0
    assert retrying.quantize(3599.0) == 3600.0
    # the grid the RabbitMQ delay queues follow stays bounded up to an hour (the queues are kept)
    assert len({retrying.quantize(ms / 1000) for ms in range(0, 3_600_001, 7)}) < 360
    grid = retrying.likely_delays(RetrySettings(max_attempts=3, backoff_base_s=1.0, jitter=0.2))
    assert grid[0] == 0.8 and grid[-1] == 2.4 and len(grid) == len(set(grid))


def test_budget_from_headers_wins_and_is_spent_per_step() -> None:
    hdrs = {h.RETRY_MAX: 5, h.RETRY_ATTEMPT: 4, h.RETRY_STEP: 0}
    d = retrying.decide(error_message("e", ["a", "b"], 0, headers=hdrs, original_payload=0), POLICY)
    assert isinstance(d, retrying.Retry) and d.attempt == 5
    hdrs[h.RETRY_ATTEMPT] = 5
    d = retrying.decide(error_message("e", ["a", "b"], 0, headers=hdrs, original_payload=0), POLICY)
    assert isinstance(d, retrying.DeadLetter) and d.reason is retrying.DlqReason.BUDGET_EXHAUSTED
    # attempts spent at step 0 do not count against step 1
    d = retrying.decide(error_message("e", ["a", "b"], 1, headers=hdrs, original_payload=0), POLICY)
    assert isinstance(d, retrying.Retry) and d.attempt == 2


def test_stringified_headers_from_a_broker_still_count() -> None:
    hdrs = {h.RETRY_MAX: "2", h.RETRY_ATTEMPT: "2", h.RETRY_STEP: "0"}
    d = retrying.decide(error_message("e", ["a"], 0, headers=hdrs, original_payload=0), POLICY)
    assert isinstance(d, retrying.DeadLetter) and d.reason is retrying.DlqReason.BUDGET_EXHAUSTED


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (error_message("e", ["a"], 0, error="connection_error"), retrying.DlqReason.CRASH_LOOP),
        (error_message("e", ["a"], 0, error="msg_parsing_error"), retrying.DlqReason.NON_RETRYABLE),
        (error_message("e", ["a"], 0, exc_type="ValidationError"), retrying.DlqReason.NON_RETRYABLE),
        (error_message("e", ["a"], 0, exc_type="app.models.ValidationError"), retrying.DlqReason.NON_RETRYABLE),
        ({"id": "e", "route": {"actors": ["a"], "current": 0}, "payload": {"x": 1}}, retrying.DlqReason.MALFORMED),
        (
            {"id": "e", "route": {"actors": ["a"], "current": 0}, "payload": {"error": "processing_error"}},
            retrying.DlqReason.MALFORMED,
        ),
        (error_message("e", ["a"], 1, original_payload=0), retrying.DlqReason.MALFORMED),
        (error_message("e", ["happy-end"], 0, original_payload=0), retrying.DlqReason.MALFORMED),
    ],
    ids=[
        "crash-loop",
        "parse",
        "validation",
        "qualified-validation",
        "no-error",
        "no-original",
        "route-done",
        "bad-route",
    ],
)
def test_what_is_never_retried(msg: dict[str, object], reason: retrying.DlqReason) -> None:
    d = retrying.decide(msg, POLICY)
    assert isinstance(d, retrying.DeadLetter) and d.reason is reason and d.detail


def test_sender_can_mark_an_error_non_retryable() -> None:
    msg = error_message("e", ["a"], 0, original_payload=0)
    msg["payload"]["details"]["retryable"] = False  # type: ignore[index]
    d = retrying.decide(msg, POLICY)
    assert isinstance(d, retrying.DeadLetter) and d.reason is retrying.DlqReason.NON_RETRYABLE


def test_reset_budget_clears_counters_and_counts_replays() -> None:
    env = {
        "id": "e",
        "headers": {h.RETRY_ATTEMPT: 3, h.RETRY_STEP: 0, h.DLQ_REASON: "x", h.RETRY_MAX: 7, h.HOPS: 1000, "k": 1},
    }
    out = retrying.reset_budget(env)
    assert out["headers"] == {h.RETRY_MAX: 7, "k": 1, h.REPLAYED: 1}
    assert retrying.reset_budget(out)["headers"][h.REPLAYED] == 2


def test_settings_from_env() -> None:
    s = CrewSettings.from_env(
        {
            "ASYA_TRANSPORT": "sqs",
            "ASYA_TRANSPORT_URL": "http://127.0.0.1:9324",
            "ASYA_STORAGE_URL": "s3://b/p",
            "ASYA_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "eu-west-1",
            "ASYA_PREFETCH": "4",
            "ASYA_HEALTH_PORT": "9000",
            "ASYA_RETRY_MAX_ATTEMPTS": "5",
            "ASYA_RETRY_BACKOFF_BASE_S": "0.5",
            "ASYA_RETRY_NON_RETRYABLE": "a, b",
        }
    )
    assert (s.transport, s.prefetch, s.health_port, s.gateway_url) == ("sqs", 4, 9000, None)
    assert (s.s3.endpoint_url, s.s3.access_key_id, s.s3.region) == ("http://127.0.0.1:8333", "k", "eu-west-1")
    assert (s.retry.max_attempts, s.retry.backoff_base_s, s.retry.non_retryable) == (5, 0.5, frozenset({"a", "b"}))
    assert CrewSettings.from_env({}).retry == RetrySettings()
