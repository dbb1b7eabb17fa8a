"""Deleting an actor: children go with it, the queue (and its messages) stays unless asked."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import actorfactory as af
import pytest
from actorfactory import wait_for
from kubernetes import client

from asya import transports

pytestmark = [pytest.mark.kube, pytest.mark.timeout(120)]


def queues(folder: Path) -> set[str]:
    with sqlite3.connect(folder / "queues.sqlite3") as conn:
        return {r[0] for r in conn.execute("SELECT name FROM queues")}


async def _publish(folder: Path, queue: str, n: int) -> int:
    t = transports.create(transports.TransportSettings(kind="local", url=str(folder)))
    await t.connect()
    try:
        for i in range(n):
            await t.publish(queue, f'{{"id": "m{i}"}}'.encode())
        return await t.queue_depth(queue)
    finally:
        await t.close()


async def _depth(folder: Path, queue: str) -> int:
    t = transports.create(transports.TransportSettings(kind="local", url=str(folder)))
    await t.connect()
    try:
        return await t.queue_depth(queue)
    finally:
        await t.close()


def ready(api: Any, ns: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: af.condition(a := af.get(api, ns, name), "QueueReady").get("status") == "True" and a,
        what=f"{name} queue",
    )


@pytest.mark.timeout(240)  # may wait out one garbage-collector rediscovery period
def test_delete_while_messages_wait_keeps_the_queue(api: Any, namespace: str, local_queues: Path) -> None:
    af.create(api, namespace, af.actor_body("keeper"))
    ready(api, namespace, "keeper")
    assert asyncio.run(_publish(local_queues, "asya-keeper", 5)) == 5
    wait_for(lambda: af.get(api, namespace, "keeper")["status"].get("queueDepth") == 5, what="queueDepth=5")
    af.delete(api, namespace, "keeper")
    apps = client.AppsV1Api(api)
    # Children are garbage-collected through their ownerReferences (kube-controller-manager).
    # Its garbage collector rediscovers resource types every 30 s, so right after the CRD is
    # installed it may not watch AsyncActors yet: allow one rediscovery period plus slack.
    wait_for(lambda: not apps.list_namespaced_deployment(namespace).items, timeout_s=90, what="deployment collected")
    wait_for(
        lambda: (
            not [
                c
                for c in client.CoreV1Api(api).list_namespaced_config_map(namespace).items
                if c.metadata.name.startswith("keeper")
            ]
        ),
        what="configmap collected",
    )
    assert "asya-keeper" in queues(local_queues)
    assert asyncio.run(_depth(local_queues, "asya-keeper")) == 5


def test_deletion_policy_delete_removes_the_queue(api: Any, namespace: str, local_queues: Path) -> None:
    af.create(api, namespace, af.actor_body("dropper", queue={"deletionPolicy": "Delete"}))
    ready(api, namespace, "dropper")
    assert "asya-dropper" in queues(local_queues)
    assert "asya.sh/finalizer" in af.get(api, namespace, "dropper")["metadata"]["finalizers"]
    af.delete(api, namespace, "dropper")

    def actor_gone() -> bool:
        try:
            af.get(api, namespace, "dropper")
        except client.exceptions.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(actor_gone, what="actor deleted")
    assert "asya-dropper" not in queues(local_queues)
    assert "asya-dlq" in queues(local_queues)  # shared by every actor: never deleted


def test_a_vanished_queue_is_recreated(api: Any, namespace: str, local_queues: Path) -> None:
    af.create(api, namespace, af.actor_body("phoenix"))
    ready(api, namespace, "phoenix")

    async def drop() -> None:
        t = transports.create(transports.TransportSettings(kind="local", url=str(local_queues)))
        await t.connect()
        await t.delete_queue("asya-phoenix")
        await t.close()

    asyncio.run(drop())
    assert "asya-phoenix" not in queues(local_queues)
    wait_for(lambda: "asya-phoenix" in queues(local_queues), timeout_s=20, what="queue re-created")
