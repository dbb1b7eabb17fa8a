"""asya_sidecar_queue_wait_seconds: from x-asya-published-at, or from the retry's not-before when later."""

from __future__ import annotations

import time

from asya.contracts import headers
from asya.contracts import metrics as names
from asya.contracts.envelope import encode_envelope, stamp_published
from asya.engine.metrics import Metrics


def observed(m: Metrics) -> tuple[float, float]:
    count = m.registry.get_sample_value(names.SIDECAR_QUEUE_WAIT_SECONDS + "_count", {"actor": "a"}) or 0.0
    total = m.registry.get_sample_value(names.SIDECAR_QUEUE_WAIT_SECONDS + "_sum", {"actor": "a"}) or 0.0
    return count, total


def test_wait_is_measured_from_the_publish_stamp() -> None:
    m = Metrics("a")
    env = stamp_published({"id": "x", "route": {"actors": ["a"], "current": 0}, "payload": None})
    assert isinstance(env["headers"][headers.PUBLISHED_AT], float)
    assert b"x-asya-published-at" in encode_envelope(env)
    env["headers"][headers.PUBLISHED_AT] -= 2.0  # as if it waited two seconds
    m.queue_wait(env)
    count, total = observed(m)
    assert count == 1 and 2.0 <= total < 3.0


def test_a_retry_counts_only_the_wait_past_its_not_before() -> None:
    m = Metrics("a")
    now = time.time()
    m.queue_wait({"headers": {headers.PUBLISHED_AT: now - 60, headers.RETRY_NOT_BEFORE: now - 1}})
    count, total = observed(m)
    assert count == 1 and 1.0 <= total < 2.0, "the 59 s of backoff it was parked for are not queue wait"


def test_no_stamp_or_a_bad_one_is_not_observed_and_skew_clamps_to_zero() -> None:
    m = Metrics("a")
    m.queue_wait({"headers": {}})
    m.queue_wait({"headers": {headers.PUBLISHED_AT: "soon"}})
    m.queue_wait({"headers": {headers.PUBLISHED_AT: True}})
    m.queue_wait({})
    assert observed(m) == (0.0, 0.0), "0.1.x producers set no stamp"
    m.queue_wait({"headers": {headers.PUBLISHED_AT: time.time() + 30}})  # a publisher whose clock runs ahead
    assert observed(m) == (1.0, 0.0)
