"""The sidecar's in-memory set of cancelled jobs: which envelopes it matches, and how it forgets."""

from __future__ import annotations

import pytest

from asya.engine.cancellation import CancellationWatch, CancelledSet


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_envelope_matches_by_its_id_its_parent_or_a_dot_prefix_of_either() -> None:
    ids = CancelledSet()
    ids.add("job1")
    assert ids.match("job1", None) == "job1"
    assert ids.match("job1.3", "job1") == "job1"  # a fan-out child
    assert ids.match("job1.3.7", "job1.3") == "job1"  # a grandchild
    assert ids.match("custom-child", "job1") == "job1"  # envelope mode: own id, parent_id kept
    assert ids.match("other", "job1.2") == "job1"  # parent is a child of the cancelled job
    # not matched: other jobs, a longer id sharing a prefix without the dot, ids that are not strings
    assert ids.match("job10", None) is None
    assert ids.match("job10.1", "job10") is None
    assert ids.match("xjob1", None) is None
    assert ids.match(".job1", None) is None
    assert ids.match(None, 7) is None


def test_a_cancelled_child_does_not_cancel_its_parent_or_siblings() -> None:
    ids = CancelledSet()
    ids.add("p.1")
    assert ids.match("p.1", "p") == "p.1"
    assert ids.match("p.1.0", "p.1") == "p.1"
    assert ids.match("p", None) is None
    assert ids.match("p.2", "p") is None


def test_ids_are_forgotten_after_their_ttl_in_the_order_they_came() -> None:
    clock = Clock()
    ids = CancelledSet(ttl_s=60, clock=clock)
    ids.add("a")
    clock.now += 30
    ids.add("b")
    ids.add("a")  # a repeat from the feed's re-read window keeps the first sighting
    clock.now += 31  # a is 61 s old, b 31 s
    ids.expire()
    assert "a" not in ids and "b" in ids and len(ids) == 1
    clock.now += 30
    ids.expire()
    assert len(ids) == 0


def test_the_set_keeps_at_most_max_ids_dropping_the_oldest() -> None:
    ids = CancelledSet(ttl_s=3600, max_ids=3, clock=Clock())
    for name in "abcde":
        ids.add(name)
    assert len(ids) == 3 and [n for n in "abcde" if n in ids] == ["c", "d", "e"]


def test_without_a_gateway_the_watch_matches_nothing_and_starts_no_task() -> None:
    watch = CancellationWatch(None)
    watch.start()
    assert watch._task is None
    assert watch.cancelled({"id": "x", "parent_id": None}) is None


@pytest.mark.parametrize("count", [0, 1000])
def test_the_watch_answers_from_the_set_only(count: int) -> None:
    watch = CancellationWatch("http://127.0.0.1:1")  # never polled here: no network on this path
    for i in range(count):
        watch.ids.add(f"j{i}")
    assert watch.cancelled({"id": "j5.1", "parent_id": "j5"}) == ("j5" if count else None)
