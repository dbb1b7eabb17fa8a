"""S3 backend of ``asya.storage.ObjectStore`` (boto3, run in a thread pool).

Created by ``storage.create_store`` for ``s3://bucket/prefix`` URLs; this is
one of the two modules allowed to import boto3 (the other is the SQS
transport). boto3 is blocking, so each call runs in a small private executor;
timeouts and retries are kept short so that "S3 is down" surfaces within
seconds and the caller can leave the message unacknowledged instead of hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from asya.storage.settings import S3Settings

T = TypeVar("T")

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """Objects under ``s3://<bucket>/<prefix>``; the bucket is created on first use."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings, *, workers: int = 16) -> None:
        if not bucket:
            raise ValueError("s3:// storage URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        config = botocore.config.Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=workers,
            s3={"addressing_style": "path"},
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
            config=config,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="asya-s3")
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _ensure_bucket(self) -> None:
        # checked once per process; a failure leaves the flag unset so the next call tries again
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _MISSING | {"NoSuchBucket"}:
                    raise
                try:
                    self._client.create_bucket(Bucket=self.bucket)
                except botocore.exceptions.ClientError as create_exc:
                    code = create_exc.response.get("Error", {}).get("Code")
                    if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
            self._bucket_ready = True

    def _put_sync(self, key: str, data: bytes) -> None:
        self._ensure_bucket()
        self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    async def put(self, key: str, data: bytes) -> str:
        await self._run(self._put_sync, key, data)
        return self.uri(key)

    def _get_sync(self, key: str) -> bytes:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING | {"NoSuchBucket"}:
                raise FileNotFoundError(self.uri(key)) from None
            raise
        body: bytes = resp["Body"].read()
        return body

    async def get(self, key: str) -> bytes:
        return await self._run(self._get_sync, key)

    def _exists_sync(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING | {"NoSuchBucket"}:
                return False
            raise
        return True

    async def exists(self, key: str) -> bool:
        return await self._run(self._exists_sync, key)

    async def delete(self, key: str) -> None:
        await self._run(self._client.delete_object, Bucket=self.bucket, Key=self.prefix + key)

    def _list_sync(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return []
            raise
        return sorted(keys)

    async def list_keys(self, prefix: str) -> list[str]:
        return await self._run(self._list_sync, prefix)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def key_of(self, uri: str) -> str:
        parsed = urllib.parse.urlparse(uri)
        path = parsed.path.lstrip("/")
        if parsed.scheme != "s3" or parsed.netloc != self.bucket or not path.startswith(self.prefix):
            raise ValueError(f"{uri!r} lies outside s3://{self.bucket}/{self.prefix}")
        return path[len(self.prefix) :]

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
