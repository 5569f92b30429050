"""`ctx.storage`: objects (files) in a local folder or any S3-compatible store.

Every backend implements `Storage` and passes the same contract tests. Keys are
validated the same way everywhere (`check_key`): a bad key is a 400
`invalid_key`, whoever supplied it.
"""

from __future__ import annotations

import datetime
import mimetypes
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, cast

from ..errors import BadRequest, PayloadTooLarge

MAX_KEY_LENGTH = 1024
ACLS = ("private", "public-read")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_METADATA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")

# What upload() takes: bytes, text (stored as UTF-8), or a binary file object
# (read in chunks, so a large one is never held in memory whole).
Data = bytes | bytearray | memoryview | str | IO[bytes]


class InvalidKey(BadRequest):
    code = "invalid_key"


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None = None
    content_disposition: str | None = None
    etag: str | None = None
    last_modified: datetime.datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class Storage(Protocol):
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
    ) -> ObjectInfo: ...
    async def download(self, key: str) -> bytes: ...
    def open(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]: ...
    async def get_url(self, key: str, expires_seconds: int = 3600) -> str: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def stat(self, key: str) -> ObjectInfo: ...
    async def list(self, prefix: str = "") -> list[ObjectInfo]: ...


def guess_type(key: str) -> str:
    """The content type a key's extension suggests (application/octet-stream if none)."""
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def check_key(key: Any) -> str:
    """The key, if it is safe on every backend; InvalidKey naming the reason otherwise."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"a storage key is a non-empty string, not {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a storage key is at most {MAX_KEY_LENGTH} characters")
    if _CONTROL.search(key):
        raise InvalidKey("a storage key cannot hold control characters (NUL, newline, ...)")
    if key.startswith("/") or "\\" in key:
        raise InvalidKey(f"a storage key is a relative path with '/' separators: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"a storage key has no empty, '.' or '..' segments: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix for `list`: empty, or a key-like string (it may end with '/')."""
    if prefix:
        check_key(prefix.rstrip("/") or "x")
    return prefix


def check_options(acl: str, metadata: Mapping[str, str] | None) -> dict[str, str]:
    if acl not in ACLS:
        raise InvalidKey(f"acl is one of {', '.join(ACLS)}, not {acl!r}", code="invalid_acl")
    clean: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not _METADATA_NAME.match(name) or not isinstance(value, str) or _CONTROL.search(value):
            raise InvalidKey(
                f"metadata {name!r}: names are letters, digits, - and _, values plain text",
                code="invalid_metadata",
            )
        clean[name.lower()] = value
    return clean


class Counted:
    """A binary reader that refuses to go past `limit` bytes (413)."""

    def __init__(self, source: IO[bytes], limit: int) -> None:
        self.source = source
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.count += len(chunk)
        if self.count > self.limit:
            raise PayloadTooLarge(
                f"the object is larger than storage.max_object_bytes ({self.limit})"
            )
        return chunk


def as_reader(data: Data) -> tuple[IO[bytes], int | None]:
    """A binary reader over `data`, and its length when known."""
    import io

    if isinstance(data, str) and not hasattr(data, "file"):
        data = data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        return io.BytesIO(raw), len(raw)
    source = getattr(data, "file", data)  # an UploadedFile carries its spooled file
    size = getattr(data, "size", None)
    if not hasattr(source, "read"):
        raise TypeError(
            f"upload() takes bytes, str or a binary file object, not {type(data).__name__}"
        )
    return cast(IO[bytes], source), size
