"""An actor pod as the operator renders it, run from the images: runtime + sidecar on a real RabbitMQ.

The pod spec comes from ``workload.render_workload`` (the sidecar image is ours, the
runtime container is the example handler image) and the runtime file from the same
ConfigMap the operator writes; ``podrun.Pod`` starts each container hardened, sharing
the socket emptyDir. The sidecar must answer its probes and carry one envelope from
its queue through the handler to the next actor's queue.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import struct
import uuid
from pathlib import Path
from typing import Any

import actorfactory as af
import controlplane
import podrun
import pytest

from asya import transports
from asya.contracts import queue_name
from asya.operator import actors, config
from asya.operator.reconciling import specs, workload

pytestmark = [pytest.mark.images, pytest.mark.rabbitmq]


def render(name: str, handler_image: str, sidecar_image: str, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's pod spec and ConfigMaps for actor ``name`` running ``handlers.normalize``."""
    body = af.actor_body(name, transport="rabbit")
    runtime = body["spec"]["workload"]["template"]["spec"]["containers"][0]
    runtime.update(image=handler_image, env=[{"name": "ASYA_HANDLER", "value": "handlers.normalize"}])
    body["metadata"].update(namespace="ns", uid="u-1", generation=1)
    actor = specs.parse_actor(body)
    transport = config.TransportConfig(name="rabbit", type="rabbitmq", url=url)
    cfg = config.OperatorConfig(transports={"rabbit": transport}, sidecar=config.SidecarDefaults(image=sidecar_image))
    pod = workload.render_workload(actor, transport, cfg)["spec"]["template"]["spec"]
    cm = workload.render_runtime_configmap(actor, actors.load_runtime_source())
    return pod, {cm["metadata"]["name"]: cm["data"]}


async def take_one(url: str, queue: str, timeout_s: float) -> dict[str, Any]:
    t = transports.create(transports.TransportSettings(kind="rabbitmq", url=url))
    await t.connect()
    try:

        async def first() -> dict[str, Any]:
            async for delivery in t.consume(queue, prefetch=1):
                await delivery.ack()
                return dict(json.loads(delivery.body))
            raise AssertionError("consumer ended")

        return await asyncio.wait_for(first(), timeout_s)
    finally:
        await t.close()


async def test_sidecar_and_runtime_pod_processes_an_envelope(
    images: dict[str, str], rabbitmq_server: Any, pod_dir: Path, started: list[Any]
) -> None:
    name = f"img-{uuid.uuid4().hex[:8]}"
    nxt = f"{name}-next"
    spec, configmaps = render(name, images["example-text"], images["sidecar"], rabbitmq_server.url)
    pod = podrun.Pod(spec, pod_dir, configmaps)
    started.append(pod)
    t = transports.create(transports.TransportSettings(kind="rabbitmq", url=rabbitmq_server.url))
    await t.connect()
    for actor in (name, nxt):  # the operator provisions these
        await t.ensure_queue(queue_name(actor))

    pod.start(specs.RUNTIME_CONTAINER, images["example-text"])
    port = controlplane.free_port()
    pod.start(specs.SIDECAR_CONTAINER, images["sidecar"], env={"ASYA_HTTP_PORT": str(port)})  # host network

    socket_dir = pod.volume(workload.SOCKET_VOLUME)
    await asyncio.to_thread(
        podrun.wait_for, lambda: (socket_dir / "runtime-ready").exists(), 60, "the runtime's ready file", pod.logs
    )
    for probe in ("healthz", "readyz"):
        url = f"http://127.0.0.1:{port}/{probe}"
        await asyncio.to_thread(podrun.wait_for, functools.partial(podrun.answers, url), 60, url, pod.logs)

    envelope = {
        "id": uuid.uuid4().hex,
        "route": {"actors": [name, nxt], "current": 0},
        "payload": {"doc": "d1", "text": "  Hello \n  world  "},
    }
    await t.publish(queue_name(name), json.dumps(envelope).encode())
    await t.close()
    try:
        out = await take_one(rabbitmq_server.url, queue_name(nxt), 60)
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"no output on {queue_name(nxt)}: {exc!r}\n{pod.logs()}") from None
    assert out["id"] == envelope["id"]
    assert out["route"]["current"] == 1
    assert out["payload"] == {"doc": "d1", "text": "Hello world", "chars": 11}


def frame(obj: Any) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data


def call(sock_path: Path, envelope: dict[str, Any]) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sock_path))
        s.sendall(frame(envelope))
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        (size,) = struct.unpack(">I", head)
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        return json.loads(body)


def test_runtime_image_entrypoint_serves_a_class_handler(
    images: dict[str, str], pod_dir: Path, started: list[Any]
) -> None:
    """The runtime base's own entry point (``python -m asya.runtime``), without the operator's file."""
    sock_dir = pod_dir / "socket"
    sock_dir.mkdir()
    sock_dir.chmod(0o1777)
    tmp = pod_dir / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    c = podrun.run(
        images["example-text"],
        "--env=ASYA_HANDLER=handlers.TopicClassifier.classify",
        f"--volume={sock_dir}:/var/run/asya:rw",
        f"--volume={tmp}:/tmp:rw",
    )
    started.append(c)
    podrun.wait_for(lambda: (sock_dir / "runtime-ready").exists(), 60, "the ready file", c.logs)
    assert (sock_dir / "asya-runtime.sock").is_socket()
    env = {
        "id": "e1",
        "route": {"actors": ["classify"], "current": 0},
        "payload": {"doc": "d", "chunk": 0, "text": "the goalkeeper saved a penalty in the final match"},
    }
    [out] = call(sock_dir / "asya-runtime.sock", env)
    assert out["route"]["current"] == 1
    assert out["payload"]["doc"] == "d"
    labels = {json.loads(line)["label"] for line in (podrun.ROOT / "examples/01-text-pipeline/training.jsonl").open()}
    assert out["payload"]["topic"] in labels, out
    assert out["payload"]["words"] == 9
