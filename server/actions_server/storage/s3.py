"""The S3 backend, through the `minio` SDK: MinIO, AWS S3, R2 or any S3-compatible store.

The SDK is blocking, so every call runs in a thread. Options map to S3 headers:
`content_type` → Content-Type, `content_disposition` → Content-Disposition,
`acl` → x-amz-acl, `storage_class` → x-amz-storage-class, `metadata` →
x-amz-meta-*. `get_url` is a presigned GET.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Mapping
from typing import Any

from minio import Minio
from minio.error import S3Error

from ..errors import NotFound, PayloadTooLarge
from . import (
    Counted,
    Data,
    ObjectInfo,
    as_reader,
    check_key,
    check_options,
    check_prefix,
    guess_type,
)

PART_SIZE = 10 * 1024 * 1024
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
_META_PREFIX = "x-amz-meta-"


class S3Storage:
    def __init__(self, client: Minio, bucket: str, *, max_object_bytes: int) -> None:
        self.client = client
        self.bucket = bucket
        self.max_object_bytes = max_object_bytes

    async def ensure_bucket(self) -> None:
        if not await asyncio.to_thread(self.client.bucket_exists, self.bucket):
            await asyncio.to_thread(self.client.make_bucket, self.bucket)

    async def upload(
        self,
        key: str,
        data: Data,
        *,
        content_type: str | None = None,
        acl: str = "private",
        storage_class: str | None = None,
        content_disposition: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        check_key(key)
        clean = check_options(acl, metadata)
        reader, size = as_reader(data)
        if size is not None and size > self.max_object_bytes:
            limit = self.max_object_bytes
            raise PayloadTooLarge(f"the object is larger than storage.max_object_bytes ({limit})")
        kind = content_type or getattr(data, "content_type", None) or guess_type(key)
        headers: dict[str, Any] = {"x-amz-acl": acl}
        if storage_class:
            headers["x-amz-storage-class"] = storage_class
        if content_disposition:
            headers["Content-Disposition"] = content_disposition
        headers.update({_META_PREFIX + name: value for name, value in clean.items()})
        counted = Counted(reader, self.max_object_bytes)
        result = await asyncio.to_thread(
            self.client.put_object,
            self.bucket,
            key,
            counted,  # type: ignore[arg-type]  # a reader with read(); the SDK needs no more
            size if size is not None else -1,
            content_type=kind,
            metadata=headers,
            part_size=PART_SIZE if size is None else 0,
        )
        return ObjectInfo(
            key=key,
            size=counted.count,
            content_type=kind,
            content_disposition=content_disposition,
            etag=result.etag,
            metadata=clean,
        )

    async def download(self, key: str) -> bytes:
        check_key(key)

        def read() -> bytes:
            response = self.client.get_object(self.bucket, key)
            try:
                content: bytes = response.read()
                return content
            finally:
                response.close()
                response.release_conn()

        content: bytes = await self._missing_is_404(key, asyncio.to_thread(read))
        return content

    async def open(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        check_key(key)
        response = await self._missing_is_404(
            key, asyncio.to_thread(self.client.get_object, self.bucket, key)
        )
        try:
            while chunk := await asyncio.to_thread(response.read, chunk_size):
                yield bytes(chunk)
        finally:
            response.close()
            response.release_conn()

    async def get_url(self, key: str, expires_seconds: int = 3600) -> str:
        check_key(key)
        expires = datetime.timedelta(seconds=expires_seconds)
        url: str = await asyncio.to_thread(
            self.client.presigned_get_object, self.bucket, key, expires
        )
        return url

    async def delete(self, key: str) -> None:
        check_key(key)
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except NotFound:
            return False
        return True

    async def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        found = await self._missing_is_404(
            key, asyncio.to_thread(self.client.stat_object, self.bucket, key)
        )
        headers = {k.lower(): v for k, v in (found.metadata or {}).items()}
        return ObjectInfo(
            key=key,
            size=int(found.size or 0),
            content_type=found.content_type,
            content_disposition=headers.get("content-disposition"),
            etag=found.etag,
            last_modified=found.last_modified,
            metadata={
                k[len(_META_PREFIX) :]: v for k, v in headers.items() if k.startswith(_META_PREFIX)
            },
        )

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        check_prefix(prefix)

        def collect() -> list[ObjectInfo]:
            return [
                ObjectInfo(
                    key=str(item.object_name),
                    size=int(item.size or 0),
                    etag=item.etag,
                    last_modified=item.last_modified,
                )
                for item in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            ]

        return sorted(await asyncio.to_thread(collect), key=lambda info: info.key)

    @staticmethod
    async def _missing_is_404(key: str, call: Any) -> Any:
        try:
            return await call
        except S3Error as exc:
            if exc.code in _MISSING:
                raise NotFound(f"no object {key!r}") from None
            raise
