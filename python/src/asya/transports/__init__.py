"""Transports: one protocol, several brokers.

``create(settings)`` maps a transport kind to its module, imported lazily so
that a missing broker SDK only matters to whoever picks that kind, and then
fails with the exact ``pip install`` to run.
"""

from __future__ import annotations

import importlib

from asya.transports.base import ATTEMPT_HEADER, Delivery, Transport, TransportSettings

__all__ = ["ATTEMPT_HEADER", "KINDS", "Delivery", "Transport", "TransportSettings", "create"]

# kind -> (module, class name, pip extra that brings its SDK)
KINDS: dict[str, tuple[str, str, str]] = {
    "local": ("asya.transports.local", "LocalTransport", ""),
    "rabbitmq": ("asya.transports.rabbitmq", "RabbitMQTransport", "sidecar"),
    "sqs": ("asya.transports.sqs", "SQSTransport", "sqs"),
}


def create(settings: TransportSettings) -> Transport:
    """Build (not connect) the transport named by ``settings.kind``."""
    try:
        module_name, class_name, extra = KINDS[settings.kind]
    except KeyError:
        raise ValueError(f"unknown transport {settings.kind!r}; choose one of: {', '.join(sorted(KINDS))}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImportError(f"transport {settings.kind!r} needs {exc.name!r}: pip install 'asya[{extra}]'") from exc
    cls = getattr(module, class_name)
    transport: Transport = cls(settings)
    return transport
