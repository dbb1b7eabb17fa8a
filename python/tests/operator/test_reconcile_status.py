"""Pure: observations -> conditions, printer fields, and the minimal status patch."""

from __future__ import annotations

from typing import Any

from asya.operator.reconciling import status

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def workload(desired: int, ready: int, gen: int = 1, seen: int = 1) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"generation": gen},
        "spec": {"replicas": desired},
        "status": {"replicas": desired, "readyReplicas": ready, "observedGeneration": seen},
    }


def conds(st: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}


def test_all_ready() -> None:
    st = status.compute_status(
        status.Observation(4, "asya-a", transport_type="local", queue_depth=3, workload=workload(2, 2)), None, T0
    )
    assert conds(st) == {
        "QueueReady": ("True", "QueueProvisioned"),
        "WorkloadReady": ("True", "ReplicasReady"),
        "ScalingReady": ("True", "FixedReplicas"),
        "Ready": ("True", "ActorReady"),
        "SpecAsWritten": ("True", "AsWritten"),
    }
    assert st["status"] == "Ready" and st["ready"] == "2/2" and st["queueDepth"] == 3
    assert st["observedGeneration"] == 4 and st["lastError"] is None
    assert all(c["observedGeneration"] == 4 for c in st["conditions"])


def test_spec_problem_is_an_error_with_words() -> None:
    p = status.Problem("UnknownTransport", "transport 'x' is not declared")
    st = status.compute_status(status.Observation(1, "asya-a", spec_problem=p), None, T0)
    assert st["status"] == "Error" and st["lastError"] == p.message
    assert conds(st)["Ready"] == ("False", "UnknownTransport")


def test_pending_rollout_and_scale_to_zero() -> None:
    st = status.compute_status(status.Observation(1, "q", workload=workload(3, 1)), None, T0)
    assert conds(st)["WorkloadReady"] == ("False", "ReplicasNotReady") and st["status"] == "Pending"
    assert "1/3 replicas ready" in st["conditions"][1]["message"]
    st = status.compute_status(status.Observation(1, "q", workload=workload(3, 3, gen=2, seen=1)), None, T0)
    assert conds(st)["WorkloadReady"] == ("False", "RollingOut")
    st = status.compute_status(status.Observation(1, "q", workload=workload(0, 0), scaling_enabled=True), None, T0)
    assert conds(st)["WorkloadReady"] == ("True", "ScaledToZero")
    assert conds(st)["ScalingReady"] == ("True", "ScaledObjectApplied")


def test_queue_and_scaling_problems_are_combined() -> None:
    obs = status.Observation(
        1,
        "q",
        queue_problem=status.Problem("QueueUnavailable", "broker down"),
        scaling_enabled=True,
        scaling_problem=status.Problem("KedaMissing", "install KEDA"),
        workload=workload(1, 1),
    )
    st = status.compute_status(obs, None, T0)
    assert st["status"] == "Error" and st["lastError"] == "broker down; install KEDA"
    assert conds(st)["Ready"] == ("False", "QueueUnavailable")


def test_transition_time_is_kept_while_status_holds_and_unchanged_means_no_patch() -> None:
    obs = status.Observation(1, "q", workload=workload(1, 1), queue_depth=0)
    first = status.compute_status(obs, None, T0)
    again = status.compute_status(obs, first, T1)
    assert status.status_patch(first, again) == {}
    flipped = status.compute_status(status.Observation(1, "q", workload=workload(1, 0), queue_depth=0), first, T1)
    patch = status.status_patch(first, flipped)
    assert set(patch) == {"status", "ready", "readyReplicas", "conditions"}
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times == {"QueueReady": T0, "WorkloadReady": T1, "ScalingReady": T0, "Ready": T1, "SpecAsWritten": T0}


def test_unknown_depth_keeps_the_last_known_value() -> None:
    first = status.compute_status(status.Observation(1, "q", queue_depth=9), None, T0)
    later = status.compute_status(status.Observation(1, "q", queue_depth=None), first, T1)
    assert later["queueDepth"] == 9


def test_settings_not_used_as_written_are_reported_from_the_workload_but_do_not_block_ready() -> None:
    wl = workload(1, 1)
    wl["metadata"]["annotations"] = {status.NOTICES_ANNOTATION: "command replaced\nASYA_ENABLE_VALIDATION not read"}
    st = status.compute_status(status.Observation(1, "q", workload=wl), None, T0)
    assert conds(st)["SpecAsWritten"] == ("False", "SettingsOverridden")
    assert conds(st)["Ready"] == ("True", "ActorReady") and st["lastError"] is None
    cond = next(c for c in st["conditions"] if c["type"] == "SpecAsWritten")
    assert cond["message"] == "command replaced; ASYA_ENABLE_VALIDATION not read"
