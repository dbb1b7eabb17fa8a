"""Process entry point: settings from env, an explicit kopf registry, then kopf.

Order at start: with ``leader_election``, wait for the Lease (a standby stays here and
makes no write at all, while answering the liveness probe itself); then, with
``manage_crds``, apply the packaged CRD; only then does kopf start watching. kopf runs
standalone (no kopf peering: ``asya.operator.leader`` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator

import kopf
from aiohttp import web

from asya.operator import crd, handlers, kube, leader
from asya.operator.settings import OperatorSettings

log = logging.getLogger("asya.operator")


def _quiet_timer_ticks(record: logging.LogRecord) -> bool:
    """Drop kopf's INFO line for every successful status tick (one per actor per interval)."""
    return not (record.levelno == logging.INFO and record.getMessage() == "Timer 'refresh' succeeded.")


@contextlib.asynccontextmanager
async def standby_liveness(endpoint: str) -> AsyncIterator[None]:
    """Answer the liveness URL while waiting for the Lease (kopf serves it once it runs).

    Without this the kubelet would restart every standby for a failing probe.
    """
    if not endpoint:
        yield
        return
    url = urllib.parse.urlsplit(endpoint)

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get(url.path or "/", alive)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 80, reuse_address=True)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()  # frees the port for kopf's own endpoint


async def serve(settings: OperatorSettings) -> int:
    """Elect, manage the CRD, run kopf until SIGTERM/SIGINT; returns the exit code."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    memo = kopf.Memo()
    if not (settings.leader_election or settings.manage_crds):
        # nothing to do before kopf: its start-up handler reports a bad configuration file
        # before anything needs the API
        return await _run_kopf(settings, registry, memo)
    async with kube.KubeClient(kube.Credentials.load(), settings.field_manager) as control:
        elector: leader.LeaseElector | None = None
        if settings.leader_election:
            elector = leader.LeaseElector(control, settings)
            async with standby_liveness(settings.liveness_endpoint):
                await elector.acquire()
            elector.start_renewing()
            memo.write_fence = elector.check  # every child write checks the Lease first
        try:
            if settings.manage_crds:
                try:
                    await crd.apply_crd(control, field_manager=settings.field_manager, retry_s=settings.retry_period_s)
                except RuntimeError as exc:
                    log.critical("%s", exc)
                    return 1
            return await _run_kopf(settings, registry, memo)
        finally:
            if elector is not None:
                try:
                    await elector.release()
                except (kube.KubeError, OSError, TimeoutError) as exc:  # it expires on its own
                    log.warning("could not release the Lease: %s", exc)


async def _run_kopf(settings: OperatorSettings, registry: kopf.OperatorRegistry, memo: kopf.Memo) -> int:
    with contextlib.suppress(asyncio.CancelledError):
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            liveness_endpoint=settings.liveness_endpoint or None,
            memo=memo,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    del argv  # everything comes from the environment
    settings = OperatorSettings.from_env()
    verbose = os.environ.get("ASYA_OPERATOR_DEBUG", "") not in ("", "0", "false")
    kopf.configure(verbose=verbose)
    logging.getLogger("asya").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("kopf.objects").addFilter(_quiet_timer_ticks)
    return asyncio.run(serve(settings))
