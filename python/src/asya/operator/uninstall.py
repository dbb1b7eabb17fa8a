"""``python -m asya.operator remove-actors``: the chart's pre-delete hook.

Every AsyncActor carries the operator's finalizer (kopf puts one on each object its status
timer watches), and only a running operator takes it off. If ``helm uninstall`` removed the
operator together with the actors of the same release, those actors could never go away and
would hold their namespace in ``Terminating`` for good. So, before the release's objects are
deleted, this command deletes the release's actors and waits while the operator is still
there to finish them (deleting queues whose deletion policy says so). Actors of other
releases are not touched: they are someone else's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from asya.operator import kube
from asya.operator.crd import GROUP, PLURAL, VERSION

log = logging.getLogger("asya.operator.uninstall")


def _collection(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}"


async def _list(client: kube.KubeClient, namespace: str, selector: str) -> list[dict[str, Any]]:
    _, body = await client.request("GET", _collection(namespace), params={"labelSelector": selector})
    items: list[dict[str, Any]] = body.get("items") or []
    return items


def _stuck_report(items: list[dict[str, Any]], namespace: str, waited_s: float) -> str:
    lines = [f"{len(items)} AsyncActor(s) in {namespace} still exist {waited_s:.0f} s after their deletion:"]
    for a in items:
        meta, st = a.get("metadata") or {}, a.get("status") or {}
        why = st.get("lastError") or "no error recorded"
        lines.append(f"  {meta.get('name')}: finalizers {meta.get('finalizers') or []}, last error: {why}")
    lines += [
        "Only a running Asya operator removes its finalizer (after deleting the queue if the actor asks for it).",
        "Check that the operator runs and watches this namespace (kubectl logs of its Deployment), then retry",
        "the uninstall. To drop an actor without the operator (its queue is then left as it is):",
        f'  kubectl -n {namespace} patch asyncactor NAME --type=merge -p \'{{"metadata":{{"finalizers":null}}}}\'',
    ]
    return "\n".join(lines)


async def remove_actors(namespace: str, selector: str, timeout_s: float) -> int:
    """Delete the AsyncActors matching ``selector`` in ``namespace`` and wait until they are gone.

    Returns 0 when none is left, 1 (after printing what holds them) at the deadline.
    """
    creds = await asyncio.to_thread(kube.Credentials.load)
    async with kube.KubeClient(creds, "asya-uninstall") as client:
        items = await _list(client, namespace, selector)
        for a in items:
            name = a["metadata"]["name"]
            await client.request("DELETE", f"{_collection(namespace)}/{quote(name)}", ok_statuses=(404,))
        log.info(
            "deleted %d AsyncActor(s) in %s matching %r; waiting for the operator", len(items), namespace, selector
        )
        t0 = time.monotonic()
        while items:
            if time.monotonic() - t0 > timeout_s:
                print(_stuck_report(items, namespace, time.monotonic() - t0), file=sys.stderr)
                return 1
            await asyncio.sleep(1.0)  # a poll interval: the condition is re-read below
            items = await _list(client, namespace, selector)
    log.info("no AsyncActor left in %s matching %r", namespace, selector)
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m asya.operator remove-actors", description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", required=True, help="namespace of the release's actors")
    parser.add_argument("--selector", required=True, help="label selector of the release's actors")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="how long to wait for the operator")
    args = parser.parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(remove_actors(args.namespace, args.selector, args.timeout_s))
