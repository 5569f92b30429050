"""Org files: bytes in ctx.storage, a row per file in the (RLS-protected) files table."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any
from urllib.parse import quote

from actions_server import BadRequest, Context, NotFound, Response, UploadedFile

FILE_COLUMNS = ("id", "name", "content_type", "size", "created_at")
URL_TTL_SECONDS = 300
_UNSAFE_IN_QUOTES = re.compile(r"[^A-Za-z0-9 ._()-]")


async def upload(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    data: bytes | UploadedFile
    uploaded = input.get("file")
    if isinstance(uploaded, UploadedFile):
        data, size = uploaded, uploaded.size
        name = input.get("name") or uploaded.filename or "file"
        content_type = input.get("content_type") or uploaded.content_type
    elif uploaded is not None:  # a JSON body that names a `file`: only multipart carries one
        raise BadRequest("send the file as a multipart/form-data part named `file`")
    else:  # the schema's other choice: content_base64 and name
        try:
            data = base64.b64decode(input["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("content_base64 is not valid base64") from None
        size, name = len(data), input["name"]
        content_type = input.get("content_type") or "application/octet-stream"
    file_id = uuid.uuid4()
    key = f"orgs/{ctx.auth.org_id}/files/{file_id}"
    # The row first: if the upload fails, the run rolls it back. (A commit that
    # fails after the upload leaves an unreferenced object, never a row without one.)
    [row] = await (
        ctx.db.table("files")
        .insert(
            {
                "id": file_id,
                "org_id": ctx.auth.org_id,
                "name": name,
                "content_type": content_type,
                "size": size,
                "storage_key": key,
                "uploaded_by": ctx.auth.user_id,
            }
        )
        .returning(*FILE_COLUMNS)
    )
    await ctx.storage.upload(
        key, data, content_type=content_type, content_disposition=_attachment(name)
    )
    return {"file": row}


async def download(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # No org filter needed: Row-Level Security hides other orgs' rows (404, not 403).
    row = await ctx.db.table("files").select("storage_key").eq("id", input["file_id"]).single()
    if row is None:
        raise NotFound(f"no file with id {input['file_id']}")
    url = await ctx.storage.get_url(row["storage_key"], expires_seconds=URL_TTL_SECONDS)
    return {"url": url, "expires_in": URL_TTL_SECONDS}


async def content(input: dict[str, Any], ctx: Context) -> Response:
    """The file itself, streamed from storage (the URL of files.download is the other way)."""
    row = await (
        ctx.db.table("files")
        .select("name", "content_type", "size", "storage_key")
        .eq("id", input["file_id"])
        .single()
    )
    if row is None:
        raise NotFound(f"no file with id {input['file_id']}")
    return Response(
        ctx.storage.open(row["storage_key"]),
        content_type=row["content_type"],
        content_length=row["size"],
        headers={
            "Content-Disposition": _attachment(row["name"]),
            "X-Content-Type-Options": "nosniff",
        },
    )


def _attachment(name: str) -> str:
    """A Content-Disposition that names the file safely in any browser (RFC 6266)."""
    plain = _UNSAFE_IN_QUOTES.sub("_", name) or "file"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
