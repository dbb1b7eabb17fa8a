"""Contracts: the wire formats and names every Asya component agrees on.

This package is the bottom layer: it imports only the standard library and
nothing else of ours, so the sidecar, crew, operator, gateway and CLI can all
depend on it without cycles.
"""

from asya.contracts import protocol
from asya.contracts.envelope import (
    DLQ_NAME,
    END_ACTORS,
    ERROR_END,
    HAPPY_END,
    Envelope,
    current_actor,
    decode_envelope,
    encode_envelope,
    is_route_done,
    next_destination,
    queue_name,
    schema_path,
    validate_actor_name,
    validate_envelope,
)
from asya.contracts.errors import (
    AsyaError,
    DlqReason,
    EnvelopeError,
    ErrorCode,
    InfrastructureError,
    PermanentError,
    RetryableError,
    StorageError,
    TransportError,
    TransportFeatureNotSupported,
)

__all__ = [
    "DLQ_NAME",
    "END_ACTORS",
    "ERROR_END",
    "HAPPY_END",
    "AsyaError",
    "DlqReason",
    "Envelope",
    "EnvelopeError",
    "ErrorCode",
    "InfrastructureError",
    "PermanentError",
    "RetryableError",
    "StorageError",
    "TransportError",
    "TransportFeatureNotSupported",
    "current_actor",
    "decode_envelope",
    "encode_envelope",
    "is_route_done",
    "next_destination",
    "protocol",
    "queue_name",
    "schema_path",
    "validate_actor_name",
    "validate_envelope",
]
