"""Asya operator: reconciles AsyncActor resources with kopf.

Public face: ``OperatorSettings`` (env-driven settings), ``register`` (adds the handlers
to a kopf registry) and ``main`` (``python -m asya.operator``). The rules live in the
pure ``reconciling`` package; ``handlers`` only reads, calls them, and writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asya.operator.settings import OperatorSettings

if TYPE_CHECKING:
    import kopf

__all__ = ["OperatorSettings", "main", "register"]


def main(argv: list[str] | None = None) -> int:
    """Run the operator until SIGTERM (see ``asya.operator.running``)."""
    from asya.operator import running

    return running.main(argv)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Add the AsyncActor handlers to ``registry`` (tests pass their own)."""
    from asya.operator import handlers

    handlers.register(registry, settings)
