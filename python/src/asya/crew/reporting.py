"""Final-status reports from the end actors to the gateway (SPEC sections 7 and 9).

happy-end reports ``succeeded`` and error-end reports ``failed`` (only when an
envelope is dead-lettered; a scheduled retry is reported as ``retrying``) when
``ASYA_GATEWAY_URL`` is set. The report is a JSON POST to
``<gateway>/jobs/<job id>/final``; the job id is the envelope id (fan-out
children carry the job in ``parent_id``). Reporting is best effort by design:
the stored result or dead letter is the record of truth, so a gateway outage
is logged and never holds an acknowledgement back. stdlib ``urllib`` in a
thread keeps the crew free of an HTTP client dependency.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger("asya.crew.reporting")

SUCCEEDED = "succeeded"
FAILED = "failed"
RETRYING = "retrying"


class Reporter:
    """Posts final statuses to the gateway; a no-op without a gateway URL."""

    def __init__(self, gateway_url: str | None, *, timeout_s: float = 3.0) -> None:
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.timeout_s = timeout_s

    def url_for(self, job_id: str) -> str:
        assert self.gateway_url is not None
        return f"{self.gateway_url}/jobs/{urllib.parse.quote(job_id, safe='')}/final"

    async def report(self, status: str, envelope: dict[str, Any], **extra: Any) -> bool:
        """POST ``{id, parent_id, status, actor?, result?, error?, uri?}``; True when the gateway said 2xx."""
        if not self.gateway_url:
            return False
        env_id = str(envelope.get("id", ""))
        body: dict[str, Any] = {"id": env_id, "parent_id": envelope.get("parent_id"), "status": status}
        body.update({k: v for k, v in extra.items() if v is not None})
        data = json.dumps(body, default=str).encode()
        try:
            return await asyncio.to_thread(self._post, self.url_for(env_id), data)
        except Exception as exc:
            log.warning("could not report %s for %s to the gateway: %s", status, env_id, exc)
            return False

    def _post(self, url: str, data: bytes) -> bool:
        req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            status: int = resp.status
            return 200 <= status < 300

    async def close(self) -> None:
        return None
