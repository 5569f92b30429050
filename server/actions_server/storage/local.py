"""The local storage backend: files under `storage.path`.

An object's bytes live in `objects/<key>` and what describes it (content type,
disposition, metadata) in `meta/<key>.json`. Both are written to a temporary
file in the same folder and renamed into place, so a reader sees the old object
or the new one, never half of one. File I/O runs in a thread, off the event
loop. `get_url` returns a signed, expiring path served by the server
(`/_storage/<key>?expires=…&signature=…`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..errors import Conflict, NotFound
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
from .signing import signed_path

CHUNK = 1024 * 1024


class LocalStorage:
    def __init__(
        self, root: Path, *, max_object_bytes: int, url_secret: bytes, base_url: str
    ) -> None:
        self.objects = root / "objects"
        self.meta = root / "meta"
        self.max_object_bytes = max_object_bytes
        self.url_secret = url_secret
        self.base_url = base_url.rstrip("/")
        self.objects.mkdir(parents=True, exist_ok=True)
        self.meta.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        return self.objects / key, self.meta / f"{key}.json"

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
        target, meta_path = self._paths(key)
        clean = check_options(acl, metadata)
        reader, _ = as_reader(data)
        kind = content_type or getattr(data, "content_type", None) or guess_type(key)
        try:
            size, etag = await asyncio.to_thread(
                self._write, target, Counted(reader, self.max_object_bytes)
            )
        except (NotADirectoryError, FileExistsError, IsADirectoryError):
            raise Conflict(
                f"{key!r}: on the local backend a key cannot be an object and a folder at once"
            ) from None
        description = {
            "content_type": kind,
            "content_disposition": content_disposition,
            "metadata": clean,
            "acl": acl,
            "storage_class": storage_class,
            "etag": etag,
        }
        await asyncio.to_thread(_write_atomically, meta_path, json.dumps(description).encode())
        return ObjectInfo(
            key=key,
            size=size,
            content_type=kind,
            content_disposition=content_disposition,
            etag=etag,
            last_modified=_mtime(target),
            metadata=clean,
        )

    @staticmethod
    def _write(target: Path, reader: Counted) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.md5(usedforsecurity=False)  # an S3-style etag, not a security check
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := reader.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return reader.count, digest.hexdigest()

    async def download(self, key: str) -> bytes:
        target, _ = self._paths(key)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no object {key!r}") from None

    async def open(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        target, _ = self._paths(key)
        try:
            handle: IO[bytes] = await asyncio.to_thread(target.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no object {key!r}") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def get_url(self, key: str, expires_seconds: int = 3600) -> str:
        check_key(key)
        return self.base_url + signed_path(self.url_secret, key, expires_seconds)

    async def delete(self, key: str) -> None:
        target, meta_path = self._paths(key)
        for path in (target, meta_path):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)

    async def exists(self, key: str) -> bool:
        target, _ = self._paths(key)
        return await asyncio.to_thread(target.is_file)

    async def stat(self, key: str) -> ObjectInfo:
        target, meta_path = self._paths(key)
        return await asyncio.to_thread(self._stat, key, target, meta_path)

    @staticmethod
    def _stat(key: str, target: Path, meta_path: Path) -> ObjectInfo:
        try:
            size = target.stat().st_size if target.is_file() else None
        except FileNotFoundError:
            size = None
        if size is None:
            raise NotFound(f"no object {key!r}")
        description: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            description = json.loads(meta_path.read_bytes())
        return ObjectInfo(
            key=key,
            size=size,
            content_type=description.get("content_type") or guess_type(key),
            content_disposition=description.get("content_disposition"),
            etag=description.get("etag"),
            last_modified=_mtime(target),
            metadata=description.get("metadata", {}),
        )

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        check_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        found = []
        for path in sorted(self.objects.rglob("*")):
            if not path.is_file() or path.name.startswith(".upload-"):
                continue
            key = path.relative_to(self.objects).as_posix()
            if key.startswith(prefix):
                found.append(self._stat(key, path, self.meta / f"{key}.json"))
        return found

    def path_of(self, key: str) -> Path:
        """Where the server reads an object from, to serve a signed URL."""
        return self._paths(key)[0]


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".meta-")
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    os.replace(temporary, path)


def _mtime(path: Path) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.UTC)
    except FileNotFoundError:
        return None
