"""Object storage for results, dead letters and claim-checked payloads.

happy-end and error-end write here, ``asya dlq`` reads here, and the sidecar's
claim check (``asya.storage.claimcheck``) offloads large payloads here. Two
backends share one small async protocol: a folder (``file:///abs/dir``, the
zero-server local mode) and S3 (``s3://bucket/prefix``, in ``asya.storage.s3`` so
that boto3 is imported only there). Keys are ``/``-separated and relative to
the URL's prefix; writes are atomic and idempotent by key, which is what makes
a duplicate delivery store once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Protocol

from asya.storage.settings import S3Settings

RESULTS_PREFIX = ""
"""Results live directly under the storage prefix: ``<YYYY-MM-DD>/<last actor>/<id>.json``."""
ERRORS_PREFIX = "errors/"
"""Dead letters: ``errors/<YYYY-MM-DD>/<failing actor>/<id>.json``."""
BLOBS_PREFIX = "blobs/"
"""Claim-checked payloads: ``blobs/<sha256>``."""


class ObjectStore(Protocol):
    """What the crew and the claim check need from a bucket or a folder."""

    async def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` (replacing it atomically); return the object's URI."""
        ...

    async def get(self, key: str) -> bytes:
        """Read the object at ``key``; ``FileNotFoundError`` when absent."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""
        ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted."""
        ...

    def uri(self, key: str) -> str:
        """Absolute URI of ``key`` (``file://...`` or ``s3://bucket/...``)."""
        ...

    def key_of(self, uri: str) -> str:
        """Inverse of ``uri``; ``ValueError`` when ``uri`` lies outside this store."""
        ...

    async def close(self) -> None: ...


def safe_segment(text: str) -> str:
    """Make ``text`` usable as one path segment (no ``/``, no empty, no dot-only name)."""
    quoted = urllib.parse.quote(text, safe="-_.@+=")
    if not quoted or set(quoted) == {"."}:
        quoted = quoted.replace(".", "%2E") or "_"
    return quoted


def utc_day(at: float) -> str:
    """``YYYY-MM-DD`` of unix time ``at`` in UTC."""
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).strftime("%Y-%m-%d")


def dated_key(prefix: str, at: float, actor: str, env_id: str) -> str:
    """``<prefix><YYYY-MM-DD>/<actor>/<id>.json`` with both names made path-safe."""
    return f"{prefix}{utc_day(at)}/{safe_segment(actor)}/{safe_segment(env_id)}.json"


async def put_once(store: ObjectStore, prefix: str, at: float, actor: str, env_id: str, data: bytes) -> str:
    """Store ``data`` under today's dated key unless yesterday's twin already exists.

    A put is idempotent by key, so a redelivery on the same day overwrites the
    same object. The extra look at yesterday covers a redelivery that crosses
    midnight UTC, which would otherwise land under a second date.
    """
    yesterday = dated_key(prefix, at - 86400, actor, env_id)
    if await store.exists(yesterday):
        return store.uri(yesterday)
    return await store.put(dated_key(prefix, at, actor, env_id), data)


_NOT_A_SEGMENT = frozenset({"", ".", ".."})


class FileStore:
    """A folder laid out like the bucket: local mode, demos and tests."""

    TEMP_DIR = ".tmp"
    """Hidden folder (under the root, so the rename stays on one file system) for writes in progress."""
    STALE_TEMP_S = 600.0
    """A temp file this old belongs to a writer that died mid-write (writes take milliseconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root_slash = str(self.root).rstrip("/") + "/"
        self._sweep_stale_temp()

    def _sweep_stale_temp(self) -> None:
        # Several processes share one folder, so only files far older than any live write are removed.
        temp = self.root / self.TEMP_DIR
        if not temp.is_dir():
            return
        cutoff = time.time() - self.STALE_TEMP_S
        for path in temp.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def _path(self, key: str) -> Path:
        # A lexical check, not resolve(): resolve() lstat()s every component, three times per stored
        # result, which was a fifth of happy-end's CPU. Keys are built from safe_segment()s, so a
        # key naming "..", "." or an empty segment is a bug or an attack, never a real object.
        if not key or key[0] == "/" or "\0" in key or any(part in _NOT_A_SEGMENT for part in key.split("/")):
            raise ValueError(f"key {key!r} is not a plain relative key inside the store root")
        return Path(self._root_slash + key)

    async def put(self, key: str, data: bytes) -> str:
        await asyncio.to_thread(self._put_sync, key, data)
        return self.uri(key)

    def _put_sync(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.root / self.TEMP_DIR
        temp.mkdir(exist_ok=True)
        # temp file + fsync + rename: a crash never leaves a half-written result, and a writer
        # killed before the rename leaves its temp file in the hidden folder, not among the results
        fd, tmp = tempfile.mkstemp(dir=temp, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def list_keys(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list_sync, prefix)

    def _list_sync(self, prefix: str) -> list[str]:
        # walk only the deepest directory the prefix names, then filter
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.root)
            if path.is_file() and not path.name.startswith(".tmp-") and rel.parts[0] != self.TEMP_DIR:
                key = rel.as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_of(self, uri: str) -> str:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"{uri!r} is not a file:// URI")
        path = Path(urllib.parse.unquote(parsed.path)).resolve()
        if self.root not in path.parents:
            raise ValueError(f"{uri!r} lies outside {self.root}")
        return path.relative_to(self.root).as_posix()

    async def close(self) -> None:
        return None


def create_store(url: str, s3: S3Settings | None = None) -> ObjectStore:
    """Build the store named by ``url``: ``file:///abs/dir``, a plain path, or ``s3://bucket/prefix``."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "s3":
        from asya.storage import s3 as s3_backend  # lazy: boto3 only when S3 is used

        return s3_backend.S3Store(parsed.netloc, parsed.path.lstrip("/"), s3 or S3Settings())
    if parsed.scheme == "file":
        return FileStore(Path(urllib.parse.unquote(parsed.path)))
    if parsed.scheme == "" and url:
        return FileStore(Path(url))
    raise ValueError(f"unsupported storage URL {url!r}: use file:///abs/dir or s3://bucket/prefix")
