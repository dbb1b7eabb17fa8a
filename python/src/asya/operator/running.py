"""Process entry point: settings from env, an explicit kopf registry, ``kopf.run``.

Standalone (no kopf peering): the Helm chart runs one replica with a Recreate strategy.
"""

from __future__ import annotations

import logging
import os

import kopf

from asya.operator import handlers
from asya.operator.settings import OperatorSettings


def _quiet_timer_ticks(record: logging.LogRecord) -> bool:
    """Drop kopf's INFO line for every successful status tick (one per actor per interval)."""
    return not (record.levelno == logging.INFO and record.getMessage() == "Timer 'refresh' succeeded.")


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    del argv  # everything comes from the environment
    settings = OperatorSettings.from_env()
    verbose = os.environ.get("ASYA_OPERATOR_DEBUG", "") not in ("", "0", "false")
    kopf.configure(verbose=verbose)
    logging.getLogger("asya").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("kopf.objects").addFilter(_quiet_timer_ticks)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint or None,
        memo=kopf.Memo(),
    )
    return 0
