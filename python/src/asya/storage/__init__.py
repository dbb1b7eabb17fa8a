"""Object stores: results, dead letters and claim-checked payloads (folder or S3).

Sits directly above ``asya.contracts``: the sidecar's claim check, the crew and
the CLI all use it, and it imports none of them.
"""

from asya.storage.objects import (
    BLOBS_PREFIX,
    ERRORS_PREFIX,
    RESULTS_PREFIX,
    FileStore,
    ObjectStore,
    create_store,
    dated_key,
    put_once,
    safe_segment,
    utc_day,
)
from asya.storage.settings import S3Settings

__all__ = [
    "BLOBS_PREFIX",
    "ERRORS_PREFIX",
    "RESULTS_PREFIX",
    "FileStore",
    "ObjectStore",
    "S3Settings",
    "create_store",
    "dated_key",
    "put_once",
    "safe_segment",
    "utc_day",
]
