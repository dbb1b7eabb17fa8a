"""Claim check: large payloads travel as a reference to object storage.

The sidecar calls ``resolve`` on every envelope it takes from its queue
(before the runtime sees it, so handlers never notice) and ``offload`` on
every envelope it is about to publish, error-end messages included; happy-end
calls ``resolve`` so stored results are whole. A payload whose envelope would exceed ``threshold`` bytes
(default 256 KiB, SQS's limit) is written to ``blobs/<sha256>.json`` in the
store and replaced by::

    {"$asya_ref": {"uri": "s3://bucket/prefix/blobs/<sha256>.json", "bytes": N, "sha256": "<hex>"}}

Content addressing makes an offload idempotent (a redelivery writes the same
object) and lets identical payloads share one object. Blobs are never deleted
by Asya: give the ``blobs/`` prefix a lifecycle rule (e.g. expire after the
longest time an envelope may spend in the system, DLQ included).

The store is any ``asya.storage.ObjectStore`` (folder or S3), built with
``asya.storage.create_store(url, s3_settings)``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from asya.contracts.envelope import Envelope, encode_envelope
from asya.contracts.errors import PermanentError

REF_KEY = "$asya_ref"
DEFAULT_THRESHOLD = 256 * 1024
"""Bytes of encoded envelope above which the payload is offloaded (SQS's message limit)."""
BLOBS_PREFIX = "blobs/"


class BlobStore(Protocol):
    """The part of ``asya.storage.ObjectStore`` the claim check uses."""

    async def put(self, key: str, data: bytes) -> str: ...

    async def get(self, key: str) -> bytes: ...

    def key_of(self, uri: str) -> str: ...


class ClaimCheckError(PermanentError):
    """A reference that cannot be honoured: unknown store, missing object, or checksum mismatch."""


def reference(payload: Any) -> dict[str, Any] | None:
    """The ``$asya_ref`` object when ``payload`` is a claim-check reference, else None."""
    if isinstance(payload, dict) and len(payload) == 1 and isinstance(payload.get(REF_KEY), dict):
        ref: dict[str, Any] = payload[REF_KEY]
        return ref
    return None


async def _ref(value: Any, store: BlobStore) -> dict[str, Any]:
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(data).hexdigest()
    uri = await store.put(f"{BLOBS_PREFIX}{digest}.json", data)
    return {REF_KEY: {"uri": uri, "bytes": len(data), "sha256": digest}}


def _is_error_message(payload: Any) -> bool:
    return isinstance(payload, dict) and "error" in payload and "original_payload" in payload


async def offload(envelope: Envelope, store: BlobStore, threshold: int = DEFAULT_THRESHOLD) -> Envelope:
    """``envelope`` itself when small enough, else a copy whose payload is a reference.

    For an error-end message (``payload = {error, details, original_payload}``)
    the ``original_payload`` is what gets offloaded, so the error stays readable
    and a retry sends the reference on, to be resolved by the actor's sidecar.
    """
    payload: Any = envelope.get("payload")
    if reference(payload) is not None or len(encode_envelope(envelope)) <= threshold:
        return envelope
    if _is_error_message(payload):
        if reference(payload["original_payload"]) is not None:
            return envelope
        return {**envelope, "payload": {**payload, "original_payload": await _ref(payload["original_payload"], store)}}
    return {**envelope, "payload": await _ref(payload, store)}


async def resolve(envelope: Envelope, store: BlobStore) -> Envelope:
    """``envelope`` itself when its payload is inline, else a copy with the payload fetched and checked.

    Raises ``ClaimCheckError`` (permanent: retrying will not help) when the
    reference points outside ``store``, the object is gone, or its bytes do
    not match; storage outages raise the store's own (transient) errors.
    """
    ref = reference(envelope.get("payload"))
    if ref is None:
        return envelope
    uri = ref.get("uri")
    if not isinstance(uri, str):
        raise ClaimCheckError(f"{REF_KEY}.uri missing in envelope {envelope.get('id')!r}")
    try:
        data = await store.get(store.key_of(uri))
    except ValueError as exc:
        raise ClaimCheckError(f"{uri} is not in the configured store: {exc}") from None
    except FileNotFoundError:
        raise ClaimCheckError(f"claim-checked payload {uri} is gone") from None
    if ref.get("sha256") not in (None, hashlib.sha256(data).hexdigest()):
        raise ClaimCheckError(f"claim-checked payload {uri} does not match its sha256")
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise ClaimCheckError(f"claim-checked payload {uri} is not JSON: {exc}") from None
    return {**envelope, "payload": payload}
