"""Crew: the end actors every pipeline shares (happy-end, error-end) and the DLQ tools.

``python -m asya.crew happy-end|error-end`` runs an end actor; ``asya dlq``
calls ``asya.crew.dlq``; the sidecar's claim check uses ``create_store``.
"""

from asya.crew.settings import CrewSettings, RetrySettings, S3Settings
from asya.crew.storage import ObjectStore, create_store

__all__ = ["CrewSettings", "ObjectStore", "RetrySettings", "S3Settings", "create_store"]
