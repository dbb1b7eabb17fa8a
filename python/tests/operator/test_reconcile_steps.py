"""One reconcile step with an in-memory API and broker: what gets written, and when not."""

from __future__ import annotations

import copy
from typing import Any

import actorfactory as af
import pytest

from asya.operator import actors, config, kube
from asya.operator.reconciling import status
from asya.operator.settings import OperatorSettings


class FakeKube:
    """Stores applied manifests; counts writes like ``kube.KubeClient``."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[str] = []

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        m = manifest["metadata"]
        self.objects[(manifest["kind"], m["namespace"], m["name"])] = copy.deepcopy(manifest)
        self.writes.append(f"apply {manifest['kind']}/{m['name']}")
        return copy.deepcopy(manifest)

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(f"delete {kind}/{name}")
        return self.objects.pop((kind, namespace, name), None) is not None


class FakeQueues:
    def __init__(self, problem: status.Problem | None = None) -> None:
        self.problem = problem
        self.ensured: list[str] = []

    async def ensure(self, transport: str, queue: str) -> status.Problem | None:
        self.ensured.append(queue)
        return self.problem

    async def depth(self, transport: str, queue: str) -> int | None:
        return 0

    async def delete(self, transport: str, queue: str) -> status.Problem | None:
        return None


MQ = config.TransportConfig("mq", "rabbitmq", url="amqp://h/", url_secret=config.SecretKeyRef("s", "url"))
LOCAL = config.TransportConfig("local", "local", url="/q")


def state(queues: FakeQueues | None = None) -> actors.OperatorState:
    return actors.OperatorState(
        settings=OperatorSettings(),
        config=config.OperatorConfig(transports={"mq": MQ, "local": LOCAL}),
        kube=FakeKube(),  # type: ignore[arg-type]
        queues=queues or FakeQueues(),  # type: ignore[arg-type]
        runtime_source="print('runtime')",
    )


def body(name: str = "echo", transport: str = "local", generation: int = 1, **spec: Any) -> dict[str, Any]:
    b = af.actor_body(name, transport=transport, **spec)
    b["metadata"].update(namespace="ns", uid="u-1", generation=generation)
    return b


async def test_first_reconcile_writes_children_and_the_second_writes_nothing() -> None:
    st = state()
    obs = await actors.reconcile(body(), st)
    assert st.kube.writes == ["apply ConfigMap/echo-asya-runtime", "apply Deployment/echo"]  # type: ignore[attr-defined]
    assert obs.queue_problem is None and obs.workload is not None and obs.queue_depth == 0
    assert st.queues.ensured == ["asya-echo"]  # type: ignore[attr-defined]
    await actors.reconcile(body(), st)
    assert len(st.kube.writes) == 2  # type: ignore[attr-defined]


async def test_a_spec_change_rewrites_only_what_changed() -> None:
    st = state()
    await actors.reconcile(body(), st)
    await actors.reconcile(body(generation=2, replicas=4), st)
    assert st.kube.writes[2:] == ["apply Deployment/echo"]  # type: ignore[attr-defined]


async def test_unknown_transport_writes_nothing() -> None:
    st = state()
    obs = await actors.reconcile(body(transport="nowhere"), st)
    assert obs.spec_problem is not None and obs.spec_problem.reason == "UnknownTransport"
    assert "declared: local, mq" in obs.spec_problem.message
    assert st.kube.writes == [] and st.queues.ensured == []  # type: ignore[attr-defined]


async def test_scaling_on_then_off_creates_then_deletes_keda_objects() -> None:
    st = state()
    await actors.reconcile(body(transport="mq", scaling={"enabled": True}), st)
    assert "apply ScaledObject/echo" in st.kube.writes  # type: ignore[attr-defined]
    assert "apply TriggerAuthentication/echo-asya" in st.kube.writes  # type: ignore[attr-defined]
    await actors.reconcile(body(transport="mq", generation=2, scaling={"enabled": False}), st)
    assert st.kube.writes[-2:] == ["delete ScaledObject/echo", "delete TriggerAuthentication/echo-asya"]  # type: ignore[attr-defined]


async def test_keda_missing_becomes_a_scaling_problem() -> None:
    st = state()

    async def no_keda(manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] in actors.SCALING_KINDS:
            raise kube.KubeError(404, "the server could not find the requested resource")
        return await FakeKube.apply(st.kube, manifest)  # type: ignore[arg-type]

    st.kube.apply = no_keda  # type: ignore[method-assign]
    obs = await actors.reconcile(body(transport="mq", scaling={"enabled": True}), st)
    assert obs.scaling_problem is not None and obs.scaling_problem.reason == "KedaMissing"


async def test_keda_installed_after_the_actor_is_picked_up_by_the_timer() -> None:
    st = state()
    keda = {"installed": False}

    async def maybe_keda(manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] in actors.SCALING_KINDS and not keda["installed"]:
            raise kube.KubeError(404, "the server could not find the requested resource")
        return await FakeKube.apply(st.kube, manifest)  # type: ignore[arg-type]

    st.kube.apply = maybe_keda  # type: ignore[method-assign]
    b = body(transport="mq", scaling={"enabled": True})
    obs = await actors.reconcile(b, st)
    b["status"] = status.compute_status(obs, None, "2026-01-01T00:00:00Z")
    still = await actors.observe(b, st)
    assert still is not None and still.scaling_problem is not None and still.scaling_problem.reason == "KedaMissing"
    keda["installed"] = True
    later = await actors.observe(b, st)
    assert later is not None and later.scaling_problem is None
    assert "apply ScaledObject/echo" in st.kube.writes  # type: ignore[attr-defined]


async def test_api_errors_ask_kopf_to_retry() -> None:
    st = state()

    async def refuse(manifest: dict[str, Any]) -> dict[str, Any]:
        raise kube.KubeError(500, "etcd timeout")

    st.kube.apply = refuse  # type: ignore[method-assign]
    with pytest.raises(actors.RetryLater, match="etcd timeout"):
        await actors.reconcile(body(), st)


async def test_broker_problem_is_carried_and_children_still_rendered() -> None:
    st = state(FakeQueues(status.Problem("QueueUnavailable", "broker down")))
    obs = await actors.reconcile(body(), st)
    assert obs.queue_problem is not None and obs.queue_depth is None
    assert "apply Deployment/echo" in st.kube.writes  # type: ignore[attr-defined]


async def test_timer_observes_without_writing_and_rechecks_the_queue_when_due() -> None:
    st = state()
    await actors.reconcile(body(), st)
    writes = list(st.kube.writes)  # type: ignore[attr-defined]
    obs = await actors.observe(body(), st)
    assert obs is not None and obs.workload is not None
    assert st.queues.ensured == ["asya-echo"]  # not due yet  # type: ignore[attr-defined]
    st.queue_checked.clear()  # as if the check interval had passed
    await actors.observe(body(), st)
    assert st.queues.ensured == ["asya-echo", "asya-echo"]  # type: ignore[attr-defined]
    assert st.kube.writes == writes  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error",
    [
        kube.KubeError(422, 'Deployment.apps "echo" is invalid: spec.template.spec.containers[0].image: Required'),
        kube.KubeError(500, "failed to convert new object to proper version: quantities must match ..."),
    ],
)
async def test_a_child_the_api_refuses_is_a_spec_problem_not_a_retry(error: kube.KubeError) -> None:
    st = state()

    async def refuse(manifest: dict[str, Any]) -> dict[str, Any]:
        raise error

    st.kube.apply = refuse  # type: ignore[method-assign]
    obs = await actors.reconcile(body(), st)
    assert obs.spec_problem is not None and obs.spec_problem.reason == "WorkloadRejected"
