"""kopf handlers for AsyncActor: thin glue between kopf and ``actors``/``reconciling``.

``register(registry, settings)`` adds every handler to an explicit registry (tests and
``running.main`` create their own), so the timer interval comes from settings. With
leader election, ``memo.write_fence`` (``leader.LeaseElector.check``) guards every write:
the children's client calls it, and kopf's session (``login``) calls it before each
non-GET request. kopf is
configured once, in the start-up handler: annotation-based progress and diff-base
storage under ``asya.sh/``, our own finalizer name, no Events (kopf posts log lines as
Events only when ``settings.posting.loggers`` is on; it is off, and the ClusterRole, which
equals what the operator uses, grants no events), and a 1 s cancellation poll.

Retries: every kopf handler retry (``kopf.TemporaryError``) writes progress annotations
(and, after its delay, a "touch" annotation), so a broker that is down must not be one.
A queue problem is written to status once and the handler finishes; the status timer
retries the queue from memory with a per-actor backoff (``actors``), and writes only when
the status changes. What is still a kopf retry (a failed API write, a queue deletion that
must hold the finalizer) backs off the same way: ``retry_delay_s`` doubling to
``retry_max_delay_s``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf

from asya.operator import actors, config, kube, provisioning
from asya.operator.crd import GROUP, PLURAL, VERSION
from asya.operator.metrics import OperatorMetrics
from asya.operator.reconciling import status
from asya.operator.settings import OperatorSettings

RESOURCE = (GROUP, VERSION, PLURAL)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_status(body: kopf.Body, patch: kopf.Patch, obs: status.Observation) -> None:
    old = dict(body.get("status") or {})
    new = status.compute_status(obs, old, _now())
    changes = status.status_patch(old, new)
    if changes:
        patch.setdefault("status", {}).update(changes)


def _wants_queue_deleted(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("queue") or {}).get("deletionPolicy") == "Delete")


def _fenced_session(info: kopf.ConnectionInfo, fence: Callable[[], None]) -> kopf.AiohttpSession:
    """kopf's API session, with the leader-election fence in front of every write it sends.

    kopf's own writes (finalizers, annotations, status) then check the Lease like the child
    writes of ``kube.KubeClient`` do; built like kopf builds its default session.
    """

    async def before_request(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        if params.method not in ("GET", "HEAD", "OPTIONS"):
            fence()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(before_request)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        trace_configs=[trace],
    )
    return kopf.AiohttpSession(server=info.server, aiohttp_session=session)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Add the AsyncActor handlers to ``registry``."""
    ours = settings
    counts = OperatorMetrics(settings.status_interval_s)

    async def build_state(memo: kopf.Memo) -> actors.OperatorState:
        try:
            cfg = config.load_config(ours.config_path)
        except config.ConfigError as exc:  # the operator cannot work: exit with the reason
            raise kopf.PermanentError(f"{ours.config_path}: {exc}") from exc
        # the Lease check of leader election (running.serve), when it is on
        fence = getattr(memo, "write_fence", None)
        client = kube.KubeClient(kube.Credentials.load(), ours.field_manager, ours.crash_after_writes, fence)
        await client.__aenter__()
        return actors.OperatorState(
            settings=ours,
            config=cfg,
            kube=client,
            # fail fast after a failed connect, but never for longer than one retry period, or a
            # retry after the broker is back would still fail
            queues=provisioning.Queues(cfg.transports, cooldown_s=min(5.0, ours.retry_delay_s)),
            runtime_source=actors.load_runtime_source(),
        )

    @kopf.on.startup(id="configure", registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = "asya.sh/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="asya.sh")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="asya.sh", key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        # A delete that arrives while the status timer runs waits for the timer to exit; kopf checks
        # that every cancellation_polling seconds (60 by default), which made some deletes take a minute.
        settings.background.cancellation_polling = 1
        memo.state = await build_state(memo)
        if ours.metrics_port:
            counts.serve(ours.metrics_port)

    @kopf.on.login(id="login", registry=registry)
    async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo | kopf.AiohttpSession:
        c = kube.Credentials.load()
        info = kopf.ConnectionInfo(
            server=c.server,
            ca_path=c.ca_path or None,
            insecure=c.insecure,
            scheme="Bearer" if c.token else None,
            token=c.token or None,
            certificate_path=c.cert_path or None,
            private_key_path=c.key_path or None,
        )
        fence = getattr(memo, "write_fence", None)
        return info if fence is None else _fenced_session(info, fence)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        state: actors.OperatorState | None = getattr(memo, "state", None)
        if state is not None:
            await state.queues.close()
            await state.kube.__aexit__(None, None, None)

    @kopf.on.resume(*RESOURCE, id="reconcile", registry=registry)
    @kopf.on.create(*RESOURCE, id="reconcile", registry=registry)
    @kopf.on.update(*RESOURCE, id="reconcile", registry=registry)
    async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
        state: actors.OperatorState = memo.state
        counts.seen(body.metadata.namespace or "", body.metadata.name or "")
        try:
            obs = await actors.reconcile(body, state)
        except actors.RetryLater as exc:
            counts.reconciled("error")
            wanted = {"status": "Error", "lastError": str(exc)}
            old = body.get("status") or {}
            changes = {k: v for k, v in wanted.items() if old.get(k) != v}
            if changes:
                patch.setdefault("status", {}).update(changes)
            raise kopf.TemporaryError(str(exc), delay=state.settings.retry_after(retry + 1)) from exc
        # a queue problem is in obs: reported here, retried by the timer (see the module docstring)
        counts.reconciled("rejected" if obs.spec_problem else "error" if obs.queue_problem else "ok")
        _write_status(body, patch, obs)

    @kopf.timer(
        *RESOURCE,
        id="refresh",
        interval=ours.status_interval_s,
        initial_delay=ours.status_interval_s,
        registry=registry,
    )
    async def refresh(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        counts.seen(body.metadata.namespace or "", body.metadata.name or "")
        seen = (body.get("status") or {}).get("observedGeneration")
        if seen != body.metadata.get("generation"):
            return  # a reconcile is pending or running; it reports itself
        obs = await actors.observe(body, memo.state)
        if obs is not None:
            _write_status(body, patch, obs)

    @kopf.on.delete(*RESOURCE, id="delete-queue", when=_wants_queue_deleted, registry=registry)
    async def delete(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
        state: actors.OperatorState = memo.state
        counts.forget(body.metadata.namespace or "", body.metadata.name or "")
        problem = await actors.delete_queue(body, state)
        if problem is not None:  # the finalizer must stay until the queue is gone: a kopf retry
            raise kopf.TemporaryError(problem.message, delay=state.settings.retry_after(retry + 1))
