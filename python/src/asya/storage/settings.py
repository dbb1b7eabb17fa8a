"""How to reach S3-compatible storage (results, dead letters, claim-checked payloads)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """How to reach S3-compatible storage; only used when the storage URL is ``s3://``."""

    endpoint_url: str | None = None
    """S3 endpoint (SeaweedFS, MinIO, ...); None means AWS itself."""
    access_key_id: str | None = None
    """Credentials; None lets boto3 find them (IRSA, instance profile, ...)."""
    secret_access_key: str | None = None
    """Secret matching ``access_key_id``."""
    region: str = "us-east-1"
    """Region used for signing (SigV4)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        """``ASYA_S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``."""
        e = os.environ if env is None else env
        return cls(
            endpoint_url=e.get("ASYA_S3_ENDPOINT_URL") or None,
            access_key_id=e.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=e.get("AWS_SECRET_ACCESS_KEY") or None,
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
