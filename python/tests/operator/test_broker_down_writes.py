"""Operator while a broker is down: the problem is written once, retries back off and write nothing.

A private RabbitMQ node (so stopping it disturbs no other test) is started once to fix its
URL, then stopped. An operator of our own, with short retry settings, reconciles an actor
on that transport: QueueReady goes False once, and then the operator's writes to the
namespace, counted from the apiserver's audit log, stay at zero over five retry periods
while it keeps trying (its log shows the attempts, spaced by the doubling backoff). When
the node is started again, the actor converges within one backoff period.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import actorfactory as af
import controlplane
import pytest
from actorfactory import OPERATOR_USER, OperatorProcess, new_namespace, wait_for
from fixtures.rabbitmq import SCRIPT, RabbitMQServer, queue_exists
from kubernetes import client

from asya.operator.settings import OperatorSettings

RETRY_S, RETRY_MAX_S, TICK_S = 1.0, 3.0, 1.0  # TICK_S: the conftest's ASYA_OPERATOR_STATUS_INTERVAL_S
PERIODS = 5


def _node(command: str, directory: Path) -> str:
    done = subprocess.run([str(SCRIPT), command, str(directory)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"ci/rabbitmq.sh {command}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[RabbitMQServer]:
    """A RabbitMQ node that has run once (its URL is fixed) and is now stopped; ``start()`` revives it."""
    directory = tmp_path / "rabbitmq"
    out = _node("start", directory)
    url = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("AMQP_URL="))
    _node("stop", directory)
    try:
        yield RabbitMQServer(url=url, dir=directory)
    finally:
        _node("stop", directory)


def operator_writes(kube: controlplane.ControlPlane, api: Any, ns: str) -> list[str]:
    """The operator's API writes into ``ns`` so far, as 'verb resource/name[/sub]'."""
    # the audit log is written in batches: once an admin write made after now is in the
    # log, every operator write before it is there too
    marker = f"audit-barrier-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=marker))
    )
    events = wait_for(
        lambda: (
            (evs := kube.audit_writes())
            and any((ev.get("objectRef") or {}).get("name") == marker for ev in evs)
            and evs
        ),
        what="audit log flushed",
    )
    out = []
    for ev in events:
        ref = ev.get("objectRef") or {}
        if ev.get("user", {}).get("username") == OPERATOR_USER and ref.get("namespace") == ns:
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            out.append(f"{ev['verb']} {ref.get('resource')}/{ref.get('name')}{sub}")
    return out


def attempts(op: OperatorProcess, ns: str, name: str) -> list[tuple[int, float]]:
    """(attempt, announced delay before the next) for each failed queue ensure the operator logged."""
    pattern = re.compile(rf"{re.escape(ns)}/{re.escape(name)}: .*\(attempt (\d+), next in (\d+) s\)")
    return [(int(m[1]), float(m[2])) for m in pattern.finditer(op.output())]


def test_retry_backoff_doubles_from_the_retry_delay_to_its_cap() -> None:
    s = OperatorSettings.from_env({"ASYA_OPERATOR_RETRY_DELAY_S": "15", "ASYA_OPERATOR_RETRY_MAX_DELAY_S": "300"})
    assert [s.retry_after(n) for n in range(1, 8)] == [15, 30, 60, 120, 240, 300, 300]
    assert s.retry_after(10**6) == 300  # a broker down for weeks: still the cap, no overflow
    assert OperatorSettings().retry_after(1) == 15 and OperatorSettings().retry_max_delay_s == 300


@pytest.mark.kube
@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_broker_down_costs_one_status_write_then_none_and_the_actor_converges_when_it_is_back(
    kube: controlplane.ControlPlane,
    api: Any,
    start_operator: Callable[..., OperatorProcess],
    stopped_broker: RabbitMQServer,
) -> None:
    ns = new_namespace(kube, "asya-b")
    op = start_operator(
        ns,
        transports={
            "flaky": {
                "type": "rabbitmq",
                "urlEnv": "ASYA_TEST_FLAKY_URL",
                "secretRef": {"name": "asya-rabbitmq", "key": "url"},
            }
        },
        ASYA_TEST_FLAKY_URL=stopped_broker.url,
        ASYA_OPERATOR_RETRY_DELAY_S=str(RETRY_S),
        ASYA_OPERATOR_RETRY_MAX_DELAY_S=str(RETRY_MAX_S),
        ASYA_OPERATOR_DEBUG="1",  # the retry attempts are logged at DEBUG
    )
    try:
        af.create(api, ns, af.actor_body("stranded", transport="flaky"))
        actor = wait_for(
            lambda: af.condition(a := af.get(api, ns, "stranded"), "QueueReady").get("status") == "False" and a,
            what="QueueReady=False",
        )
        cond = af.condition(actor, "QueueReady")
        assert cond["reason"] == "QueueUnavailable"
        assert "cannot create queue 'asya-stranded' on transport 'flaky' (rabbitmq)" in actor["status"]["lastError"]
        # the only other legitimate status change: the controller-manager's ReplicaSet and Pod show up
        wait_for(lambda: af.get(api, ns, "stranded")["status"].get("replicas") == 1, what="status shows the pod")
        before = operator_writes(kube, api, ns)
        seen = len(attempts(op, ns, "stranded"))
        time.sleep(PERIODS * (RETRY_MAX_S + TICK_S))  # a span of time is what is measured here, not a condition
        during = operator_writes(kube, api, ns)[len(before) :]
        assert during == [], f"operator writes while the broker stayed down: {during}"
        tries = attempts(op, ns, "stranded")
        assert len(tries) - seen >= PERIODS - 1, f"the operator stopped retrying: {tries}"
        delays = [d for _, d in tries]
        assert delays[:3] == [RETRY_S, 2 * RETRY_S, RETRY_MAX_S] and set(delays[3:]) == {RETRY_MAX_S}, delays
        assert af.condition(af.get(api, ns, "stranded"), "QueueReady")["status"] == "False"

        stopped_broker.start()
        back = time.monotonic()
        wait_for(
            lambda: af.condition(af.get(api, ns, "stranded"), "QueueReady").get("status") == "True",
            timeout_s=RETRY_MAX_S + TICK_S + 5,  # one backoff period, one status tick, API and watch latency
            what="QueueReady=True once the broker is back",
        )
        converged = time.monotonic() - back
        healed = af.get(api, ns, "stranded")
        assert healed["status"].get("lastError") is None and healed["status"]["status"] != "Error"
        assert queue_exists(stopped_broker.url, "asya-stranded"), f"no queue after {converged:.1f} s"
    finally:
        op.stop()
