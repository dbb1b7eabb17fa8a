"""The dev-run tracker decides by ids: repeated, foreign, lost and out-of-order reports cannot fool it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from asya.cli.tracker import RunState, Tracker


def _progress(env_id: str, actor: str, step: int, status: str = "success", **extra: Any) -> dict[str, Any]:
    return {"id": env_id, "parent_id": extra.pop("parent_id", None), "actor": actor, "step": step, "steps": 3,
            "status": status, "sent": extra.pop("sent", 1), **extra}  # fmt: skip


def _final(env_id: str, status: str = "succeeded", parent_id: str | None = None) -> dict[str, Any]:
    return {"id": env_id, "parent_id": parent_id, "status": status, "actor": "c"}


def test_a_repeated_final_report_closes_only_its_own_id() -> None:
    state = RunState()
    state.expect(["r-0", "r-1", "r-2"])
    for _ in range(3):  # happy-end killed after reporting, before acking: the report comes again
        state.on_final(_final("r-0"))
    assert state.open_ids == {"r-1", "r-2"}
    assert state.progress.open == 2
    assert state.progress.succeeded == 1
    assert state.progress.repeated_reports == 2


def test_foreign_reports_are_counted_apart_and_never_push_open_below_zero() -> None:
    state = RunState()
    state.expect(["r-0"])
    state.on_final(_final("someone-else-1"))
    state.on_final(_final("someone-else-2", "failed"))
    state.on_progress(_progress("someone-else-3", "a", 0, outputs=["someone-else-3"]))
    assert state.progress.open == 1
    assert state.open_ids == {"r-0"}
    assert state.progress.foreign == 3
    assert state.progress.succeeded == 0 and state.progress.failed == 0
    state.on_final(_final("r-0"))
    assert state.progress.open == 0


def test_fan_out_by_outputs_waits_for_every_child_even_when_a_final_arrives_first() -> None:
    state = RunState()
    state.expect(["r-0"])
    state.on_progress(_progress("r-0", "a", 0, outputs=["r-0"]))
    state.on_final(_final("r-0.1", parent_id="r-0"))  # overtakes the fan-out report
    state.on_progress(_progress("r-0", "b", 1, sent=3, outputs=["r-0.0", "r-0.1", "r-0.2"]))
    assert state.open_ids == {"r-0.0", "r-0.2"}
    state.on_final(_final("r-0.0", parent_id="r-0"))
    state.on_final(_final("r-0.2", "failed", parent_id="r-0"))
    assert state.progress.open == 0
    assert (state.progress.succeeded, state.progress.failed) == (2, 1)


def test_a_duplicate_delivery_after_the_result_does_not_reopen_the_id() -> None:
    state = RunState()
    state.expect(["r-0"])
    state.on_final(_final("r-0"))
    # a sidecar killed after publishing but before acking: the input runs again at a step
    state.on_progress(_progress("r-0", "c", 2, outputs=["r-0"]))
    state.on_progress(_progress("r-0", "c", 2, outputs=["r-0"]))
    assert state.progress.open == 0
    assert state.progress.processed_twice == 1


def test_a_retry_is_not_counted_as_processed_twice() -> None:
    state = RunState()
    state.expect(["r-0"])
    state.on_progress(_progress("r-0", "c", 2, "error", outputs=["r-0"]))
    state.on_final({**_final("r-0", "retrying")})
    state.on_progress(_progress("r-0", "c", 2, outputs=["r-0"]))
    assert state.progress.open == 1
    assert state.progress.processed_twice == 0
    assert state.progress.retrying == 1


def test_without_outputs_a_fan_out_learns_its_children_from_their_own_reports() -> None:
    state = RunState()
    state.expect(["r-0"])
    state.on_progress(_progress("r-0", "b", 1, sent=2))  # an older sidecar: no `outputs`
    assert state.progress.open == 0  # not done: devrun also needs the queues drained
    state.on_progress(_progress("r-0.0", "c", 2, parent_id="r-0"))
    state.on_progress(_progress("r-0.1", "c", 2, parent_id="r-0"))
    assert state.open_ids == {"r-0.0", "r-0.1"}
    state.on_final(_final("r-0.0", parent_id="r-0"))
    state.on_final(_final("r-0.1", parent_id="r-0"))
    assert state.progress.open == 0 and state.progress.succeeded == 2


def test_a_progress_report_from_an_end_actor_does_not_end_the_envelope() -> None:
    state = RunState()
    state.expect(["r-0"])
    state.on_progress(_progress("r-0", "happy-end", 3, outputs=[]))
    assert state.open_ids == {"r-0"}, "only a final report (or a stored file) ends an envelope"


def test_stored_files_stand_in_for_lost_reports() -> None:
    state = RunState()
    state.expect(["r-0", "r-1", "r-2"])
    # r-0's final was lost; r-1 fanned out and that report was lost too; r-2 is still running
    state.resolve_from_files(results=["r-0", "r-1.0", "r-1.1"], dead_letters=["foreign-9"])
    assert state.open_ids == {"r-2"}
    assert state.terminal == {"r-0": "result", "r-1.0": "result", "r-1.1": "result"}
    assert state.root_of("r-1.1") == "r-1"


async def test_the_http_endpoint_rejects_reports_without_an_id_and_takes_the_rest() -> None:
    tracker = Tracker()
    url = await tracker.start()
    try:
        tracker.expect(["r-0"])
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/jobs/x/final", data=b"not json") as resp:
                assert resp.status == 400
            async with http.post(f"{url}/jobs/x/final", json={"status": "succeeded"}) as resp:
                assert resp.status == 400
            for _ in range(2):
                async with http.post(f"{url}/jobs/r-0/final", json=_final("r-0")) as resp:
                    assert resp.status == 200
        await asyncio.wait_for(tracker.changed.wait(), 5)
        assert tracker.progress.open == 0 and tracker.progress.succeeded == 1
    finally:
        await tracker.stop()
