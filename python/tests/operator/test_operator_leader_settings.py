"""Leader-election and CRD-management settings from the environment (no cluster)."""

from __future__ import annotations

import os
import socket

import pytest

from asya.operator.settings import OperatorSettings


def test_off_by_default_with_client_go_timings() -> None:
    s = OperatorSettings.from_env({})
    assert (s.leader_election, s.manage_crds) == (False, False)
    assert (s.lease_name, s.lease_namespace) == ("asya-operator", "default")
    assert (s.lease_duration_s, s.renew_deadline_s, s.retry_period_s) == (15.0, 10.0, 2.0)
    assert s.identity == f"{socket.gethostname()}_{os.getpid()}"


def test_pod_env_names_the_namespace_and_identity_and_explicit_env_wins() -> None:
    env = {"ASYA_OPERATOR_LEADER_ELECTION": "true", "POD_NAMESPACE": "asya", "POD_NAME": "asya-operator-7d9-x2"}
    s = OperatorSettings.from_env(env)
    assert (s.leader_election, s.lease_namespace, s.identity) == (True, "asya", "asya-operator-7d9-x2")
    s = OperatorSettings.from_env({**env, "ASYA_OPERATOR_LEASE_NAMESPACE": "ops", "ASYA_OPERATOR_MANAGE_CRDS": "True"})
    assert (s.lease_namespace, s.manage_crds) == ("ops", True)


@pytest.mark.parametrize("value", ["ture", "enabled", "2"])
def test_a_flag_that_is_neither_true_nor_false_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="ASYA_OPERATOR_LEADER_ELECTION must be true or false"):
        OperatorSettings.from_env({"ASYA_OPERATOR_LEADER_ELECTION": value})


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [("10", "10", "2"), ("15", "20", "2"), ("15", "10", "10"), ("15", "10", "0")],
)
def test_timings_that_could_let_two_leaders_overlap_are_refused(duration: str, deadline: str, retry: str) -> None:
    env = {
        "ASYA_OPERATOR_LEADER_ELECTION": "true",
        "ASYA_OPERATOR_LEASE_DURATION_S": duration,
        "ASYA_OPERATOR_RENEW_DEADLINE_S": deadline,
        "ASYA_OPERATOR_RETRY_PERIOD_S": retry,
    }
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        OperatorSettings.from_env(env)
    # without election the timings are unused, so they do not stop the operator
    assert not OperatorSettings.from_env({**env, "ASYA_OPERATOR_LEADER_ELECTION": "false"}).leader_election
