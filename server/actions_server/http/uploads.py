"""`multipart/form-data` bodies: form fields, and files streamed to a spooled temp file.

A file part becomes an `UploadedFile`: a `str` (its file name, which is what
the input schema validates, as `{type: string, format: binary}`) that carries
the bytes in a temporary file — kept in memory up to 1 MiB, on disk beyond —
so `ctx.storage.upload(key, input["file"])` streams it on without the object
ever being held twice in memory. Only fields the input schema declares with
`format: binary` may be files, and only actions with such a field take
multipart at all (the others are JSON-only, 415). A text field is capped at
`MAX_FIELD_BYTES` as it streams. Temporary files are closed when the run ends.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..coercion import ObjectPlan
from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

SPOOL_IN_MEMORY = 1024 * 1024
CHUNK = 64 * 1024
MAX_FIELD_BYTES = 1024 * 1024


class UploadedFile(str):
    """A file from a multipart upload; the string is its file name."""

    content_type: str
    size: int
    file: IO[bytes]

    def __new__(
        cls, filename: str, *, content_type: str, size: int, file: IO[bytes]
    ) -> UploadedFile:
        uploaded = super().__new__(cls, filename)
        uploaded.content_type = content_type
        uploaded.size = size
        uploaded.file = file
        return uploaded

    @property
    def filename(self) -> str:
        return str.__str__(self)

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def close(self) -> None:
        self.file.close()


def is_multipart(content_type: str) -> bool:
    return content_type == "multipart/form-data"


async def read_multipart(
    request: web.BaseRequest,
    plan: ObjectPlan | None,
    binary_fields: frozenset[str],
    max_file_bytes: int,
    put: Any,
) -> dict[str, Any]:
    """The form's fields (coerced like a query string, through `put`) and its files."""
    if not binary_fields:
        raise UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json): this action takes "
            "no file, so not multipart/form-data"
        )
    try:
        reader = await request.multipart()
    except ValueError as exc:  # no boundary in the Content-Type
        raise _malformed(exc) from None
    fields: dict[str, list[str]] = {}
    files: dict[str, UploadedFile] = {}
    try:
        async for part in reader:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise BadRequest(
                    "every part of a multipart body needs a field name", code="malformed_body"
                )
            if part.filename is not None:
                if part.name not in binary_fields:
                    raise BadRequest(
                        f"field {part.name!r} is not a file field "
                        "(declare it {type: string, format: binary})",
                        code="unexpected_file",
                    )
                files[part.name] = await _spool(part, max_file_bytes)
            else:
                raw = await _read_field(part)
                fields.setdefault(part.name, []).append(raw.decode(part.get_charset("utf-8")))
    except BaseException as exc:
        for uploaded in files.values():
            uploaded.close()
        # A body that does not follow its boundary, a part with broken headers,
        # a field that is not in its charset, or a charset Python does not know:
        # the client's mistake.
        if isinstance(exc, ValueError | LookupError | HttpProcessingError):
            raise _malformed(exc) from None
        raise
    payload: dict[str, Any] = {}
    for name, values in fields.items():
        put(payload, plan, name, values)
    payload.update(files)
    return payload


def _malformed(exc: Exception) -> BadRequest:
    reason = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return BadRequest(f"the multipart body cannot be read: {reason}", code="malformed_body")


async def _read_field(part: BodyPartReader) -> bytes:
    """A text field, refused as soon as more than MAX_FIELD_BYTES of it have come."""
    raw = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        if len(raw) + len(chunk) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"form field {part.name!r} is larger than {MAX_FIELD_BYTES} bytes"
            )
        raw += chunk
    try:
        return bytes(part.decode(raw))  # a Content-Transfer-Encoding only ever shrinks it
    except RuntimeError as exc:  # aiohttp's word for an encoding it does not know
        raise _malformed(exc) from None


async def _spool(part: BodyPartReader, limit: int) -> UploadedFile:
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed with the run
    size = 0
    try:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"file {part.filename!r} is larger than storage.max_object_bytes ({limit})"
                )
            spooled.write(chunk)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    content_type = part.headers.get("Content-Type", "application/octet-stream")
    return UploadedFile(part.filename or "", content_type=content_type, size=size, file=spooled)


def close_files(payload: Any) -> None:
    if isinstance(payload, dict):
        for value in payload.values():
            if isinstance(value, UploadedFile):
                value.close()
