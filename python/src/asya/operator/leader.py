"""Leader election on a coordination.k8s.io Lease: with several replicas, one reconciles.

Why our own and not kopf's peering: peering needs the KopfPeering CRDs, and replicas of
equal priority do not exclude each other there, they all pause (kopf docs, "Peering").

The rules follow client-go's election, timed with the local monotonic clock only (no
trust in other machines' clocks):

- a standby reads the Lease every ``retry_period_s``; it takes it over (an update guarded
  by ``resourceVersion``, so two standbys cannot both win) when the holder field is empty
  or the record has not changed for the holder's ``leaseDurationSeconds`` since this
  process first saw it;
- the leader renews every ``retry_period_s``. A renewal counts from the moment it was
  *sent*; when ``renew_deadline_s`` has passed since the last one that succeeded, or the
  Lease names someone else, the process exits at once (``os._exit``, non-zero): kopf gets no
  chance to write anything more, the kubelet restarts the pod, and the restarted process
  starts again as a standby. Because the deadline is shorter than the lease duration, the
  old leader is gone before a standby may take over.
- ``check`` is the fence the child writes go through (``kube.KubeClient``): a process that
  was frozen (SIGSTOP, a stalled node) past its deadline exits before its next write,
  even when the renewal task has not run yet.
- on a clean stop the Lease is released (holder emptied), so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import os
import random
import time
from typing import Any

from asya.operator.kube import KubeClient, KubeError
from asya.operator.settings import OperatorSettings

log = logging.getLogger("asya.operator.leader")

EXIT_LEASE_LOST = 3
"""Exit code of a leader that lost its Lease (so the restart is told apart from a crash)."""


def _micro_time() -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_path(namespace: str, name: str = "") -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


class LeaseElector:
    """Acquire, hold and release one Lease for ``settings.identity``."""

    def __init__(self, client: KubeClient, settings: OperatorSettings) -> None:
        self._client = client
        self._s = settings
        self._duration = max(1, math.ceil(settings.lease_duration_s))
        self._observed: tuple[str, float] = ("", 0.0)
        """resourceVersion of the Lease last read, and when (monotonic) it was first seen."""
        self._renewed_at = -math.inf
        """Monotonic time the last successful renewal was sent; -inf = not the leader."""
        self._renewer: asyncio.Task[None] | None = None

    @property
    def identity(self) -> str:
        return self._s.identity

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._renewed_at + self._s.renew_deadline_s

    def check(self) -> None:
        """End the process unless the Lease is certainly still ours (call before a write)."""
        if self._renewer is not None and not self.is_leader:
            self._lose(f"could not renew Lease {self._where} for {self._s.renew_deadline_s:g} s")

    @property
    def _where(self) -> str:
        return f"{self._s.lease_namespace}/{self._s.lease_name}"

    def _lose(self, why: str) -> None:
        log.critical("%s: %s; exiting so that only the new leader reconciles", self.identity, why)
        for handler in logging.getLogger().handlers + log.handlers:
            handler.flush()
        os._exit(EXIT_LEASE_LOST)

    async def acquire(self) -> None:
        """Return once this process holds the Lease (a standby waits here)."""
        waiting_logged = False
        while True:
            won, holder = await self._attempt()
            if won:
                log.info("%s: acquired Lease %s, reconciling", self.identity, self._where)
                return
            if not waiting_logged:
                log.info("%s: standby, Lease %s is held by %s", self.identity, self._where, holder)
                waiting_logged = True
            # jitter, so standbys that lost one race do not collide on every retry
            await asyncio.sleep(self._s.retry_period_s * random.uniform(1.0, 1.2))

    def start_renewing(self) -> None:
        """Renew in the background until ``release`` (or exit when that fails)."""
        self._renewer = asyncio.create_task(self._renew_loop(), name="asya-lease-renewal")

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._s.retry_period_s)
            self.check()
            deadline = self._renewed_at + self._s.renew_deadline_s
            try:
                async with asyncio.timeout(max(0.05, deadline - time.monotonic())):
                    won, holder = await self._attempt()
            except (TimeoutError, KubeError, OSError) as exc:
                log.warning("%s: renewing Lease %s failed: %s", self.identity, self._where, exc or "timeout")
                continue
            if not won and holder != self.identity:
                self._lose(f"Lease {self._where} is now held by {holder!r}")

    async def release(self) -> None:
        """Give the Lease up after a clean stop, so a standby need not wait for it to expire."""
        if self._renewer is None:
            return
        self._renewer.cancel()
        self._renewer = None
        if not self.is_leader:
            return
        status, lease = await self._client.request("GET", lease_path(self._s.lease_namespace, self._s.lease_name))
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time())
        lease["spec"] = spec
        status, _ = await self._put(lease)
        self._renewed_at = -math.inf
        if status == 200:
            log.info("%s: released Lease %s", self.identity, self._where)

    async def _put(self, lease: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = lease_path(self._s.lease_namespace, self._s.lease_name)
        return await self._client.request("PUT", path, json=lease, ok_statuses=(409,))

    async def _attempt(self) -> tuple[bool, str]:
        """One read-and-maybe-write round: (whether we hold a fresh renewal, the holder seen)."""
        sent = time.monotonic()
        ns, name = self._s.lease_namespace, self._s.lease_name
        status, lease = await self._client.request("GET", lease_path(ns, name), ok_statuses=(404,))
        now = _micro_time()
        mine = {"holderIdentity": self.identity, "leaseDurationSeconds": self._duration, "renewTime": now}
        if status == 404:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": ns},
                "spec": {**mine, "acquireTime": now, "leaseTransitions": 0},
            }
            status, _ = await self._client.request("POST", lease_path(ns), json=body, ok_statuses=(409,))
            if status == 409:  # another replica created it first
                return False, "another replica"
            self._renewed_at = sent
            return True, self.identity
        spec = dict(lease.get("spec") or {})
        holder = str(spec.get("holderIdentity") or "")
        version = str(lease["metadata"]["resourceVersion"])
        if version != self._observed[0]:
            self._observed = (version, time.monotonic())
        if holder and holder != self.identity:
            expires = self._observed[1] + float(spec.get("leaseDurationSeconds") or self._duration)
            if time.monotonic() < expires:
                return False, holder
            log.info("%s: Lease %s of %s expired, taking over", self.identity, self._where, holder)
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(mine)
        lease["spec"] = spec  # metadata keeps resourceVersion: a concurrent change is a 409
        self.check()  # a leader frozen between the read and this write is past its deadline
        status, stored = await self._put(lease)
        if status == 409:  # changed since our read: decide again on the next round
            return False, holder
        self._observed = (str(stored["metadata"]["resourceVersion"]), time.monotonic())
        self._renewed_at = sent
        return True, self.identity
