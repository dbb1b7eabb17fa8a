"""Crew: the end actors every pipeline shares (happy-end, error-end) and the DLQ tools.

``python -m asya.crew happy-end|error-end`` runs an end actor; ``asya dlq``
calls ``asya.crew.dlq``. Both are processors plugged into ``asya.engine``.
"""

from asya.crew.settings import CrewSettings, RetrySettings

__all__ = ["CrewSettings", "RetrySettings"]
