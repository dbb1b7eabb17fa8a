"""Pure: AsyncActor body -> ActorSpec, and the errors a person can act on (no cluster)."""

from __future__ import annotations

import actorfactory as af
import pytest

from asya.operator.reconciling import specs


def body(**spec: object) -> dict:
    b = af.actor_body("echo", **spec)
    b["metadata"].update(namespace="ns", uid="u-1", generation=3)
    return b


def test_defaults_when_the_api_did_not_fill_them() -> None:
    a = specs.parse_actor(body())
    assert (a.name, a.namespace, a.uid, a.generation, a.queue) == ("echo", "ns", "u-1", 3, "asya-echo")
    assert a.workload_type == "Deployment" and a.replicas == 1 and not a.scaling.enabled
    assert (a.processing_timeout_s, a.graceful_shutdown_s, a.prefetch) == (300, 30, 1)
    assert a.delete_queue is False


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda b: b["metadata"].update(name="my.actor"), "metadata.name", "DNS-1123"),
        (lambda b: b["metadata"].update(name="x" * 64), "metadata.name", "at most 63"),
        (lambda b: b["spec"].pop("transport"), "spec.transport", "required"),
        (
            lambda b: b["spec"].update(scaling={"minReplicas": 4, "maxReplicas": 2}),
            "spec.scaling.minReplicas",
            "less than or equal",
        ),
        (
            lambda b: b["spec"]["workload"]["template"]["spec"]["containers"][0].update(name="main"),
            "spec.workload.template.spec.containers",
            '"asya-runtime"',
        ),
        (
            lambda b: b["spec"]["workload"]["template"]["spec"]["containers"].append({"name": "asya-sidecar"}),
            "spec.workload.template.spec.containers",
            "reserved",
        ),
        (
            lambda b: b["spec"]["workload"]["template"]["spec"]["containers"][0].update(env=[]),
            "spec.workload.template.spec.containers[asya-runtime].env",
            "ASYA_HANDLER",
        ),
        (lambda b: b["spec"]["workload"].update(type="Job"), "spec.workload.type", "Deployment, StatefulSet"),
        (lambda b: b["spec"].update(timeout={"processing": 0}), "spec.timeout.processing", "from 1"),
        (lambda b: b["spec"].update(replicas=True), "spec.replicas", "integer"),
        # the 0.1.x names: the API refuses disagreeing pairs by CEL; re-checked for CRDs without it
        (
            lambda b: b["spec"]["workload"].update(type="Deployment", kind="StatefulSet"),
            "spec.workload.kind",
            "disagree",
        ),
        (
            lambda b: (b["spec"].update(replicas=2), b["spec"]["workload"].update(replicas=3)),
            "spec.workload.replicas",
            "disagree",
        ),
        (lambda b: b["spec"]["workload"].update(kind="Job"), "spec.workload.kind", "Deployment, StatefulSet"),
        (
            lambda b: b["spec"]["workload"].update(pythonExecutable="python3 -u"),
            "spec.workload.pythonExecutable",
            "one",
        ),
        (
            lambda b: b["spec"].update(scaling={"advanced": {"metricType": "Utilization"}}),
            "spec.scaling.advanced.metricType",
            "AverageValue",
        ),
    ],
)
def test_bad_specs_name_the_field(mutate, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    b = body()
    mutate(b)
    with pytest.raises(specs.SpecError) as info:
        specs.parse_actor(b)
    assert info.value.field == field
    assert words in str(info.value)


def test_values_are_carried_over() -> None:
    a = specs.parse_actor(
        body(
            replicas=4,
            scaling={"enabled": True, "minReplicas": 1, "maxReplicas": 9, "queueLength": 3},
            timeout={"processing": 12, "gracefulShutdown": 45},
            retry={"maxAttempts": 7, "backoff": {"initialSeconds": 0.5, "maxSeconds": 60}},
            sidecar={"image": "img:2", "prefetch": 8, "env": [{"name": "X", "value": "1"}]},
            queue={"deletionPolicy": "Delete"},
        )
    )
    assert a.replicas == 4 and a.scaling.enabled and a.scaling.max_replicas == 9 and a.scaling.queue_length == 3
    assert (a.processing_timeout_s, a.graceful_shutdown_s) == (12, 45)
    assert a.max_attempts == 7 and a.backoff.initial_s == 0.5
    assert a.sidecar_image == "img:2" and a.prefetch == 8 and a.sidecar_env == ({"name": "X", "value": "1"},)
    assert a.delete_queue is True


def test_0_1_names_are_read_when_ours_are_absent() -> None:
    b = body(scaling={"advanced": {"formula": "q", "target": "2"}})
    b["spec"]["workload"].update(kind="StatefulSet", replicas=3, pythonExecutable="/opt/conda/bin/python")
    a = specs.parse_actor(b)
    assert (a.workload_type, a.replicas, a.python_executable) == ("StatefulSet", 3, "/opt/conda/bin/python")
    assert a.scaling.advanced == specs.AdvancedScaling(formula="q", target="2")
    assert a.scaling.cooldown_period == 60 and a.notices == ()
