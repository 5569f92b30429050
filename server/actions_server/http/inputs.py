"""An HTTP request → an action's input: query string, JSON body, path parameters.

They merge in that order, later ones winning, so a path parameter can never be
overridden by a body field of the same name. Query and path strings are
coerced to the types the input schema asks for; what cannot be coerced is left
as a string for validation to report by its path. Query parameters the schema
does not declare are dropped when the schema allows no other properties (as
FastAPI ignores undeclared query parameters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from ..coercion import ObjectPlan
from ..errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from ..jsonutil import InputError, JSONDecodeError, parse_input
from ..manifests.model import ActionSpec
from .uploads import is_multipart, read_multipart


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyLimits:
    max_bytes: int  # a JSON body
    timeout_seconds: float
    max_file_bytes: int = 100 * 1024 * 1024  # one file of a multipart body


@asynccontextmanager
async def _deadline(limits: BodyLimits) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            yield
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {limits.timeout_seconds:g}s"
        ) from None


async def read_input(
    request: web.BaseRequest, action: ActionSpec, params: dict[str, str], limits: BodyLimits
) -> tuple[dict[str, Any], bytes | None]:
    """The action's input, and the raw body as it arrived (None for none, or multipart)."""
    schema = action.input
    plan = schema.plan if schema is not None else None
    payload: dict[str, Any] = {}
    raw: bytes | None = None
    if request.query_string:
        query = request.query
        for key in dict.fromkeys(query.keys()):
            values = query.getall(key)
            if _REPLACED in key or any(_REPLACED in v for v in values):
                _check_utf8(request.rel_url.raw_query_string)
            _put(payload, plan, key, values)
    if request.body_exists:
        if is_multipart(request.content_type):
            binary = schema.binary_fields if schema is not None else frozenset()
            async with _deadline(limits):
                form = await read_multipart(request, plan, binary, limits.max_file_bytes, _put)
            payload.update(form)
        else:
            body, raw = await _read_json_object(request, limits)
            payload.update(body)
    for name, value in params.items():
        _put(payload, plan, name, [value])
    return payload, raw


_REPLACED = "\ufffd"  # what the URL parser makes of bytes that are not UTF-8


def _check_utf8(raw_query: str) -> None:
    """Refuse a query string that is not UTF-8 once percent-decoded: its values
    would otherwise arrive silently changed (each bad byte as U+FFFD)."""
    try:
        unquote_to_bytes(raw_query.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            "the query string is not valid UTF-8 once percent-decoded", code="malformed_query"
        ) from None


def _put(payload: dict[str, Any], plan: ObjectPlan | None, key: str, values: list[str]) -> None:
    if plan is None:
        payload[key] = values[0] if len(values) == 1 else values
        return
    keep, value = plan.coerce(key, values)
    if keep:
        payload[key] = value


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed `limit` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the body is {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)


async def _read_json_object(
    request: web.BaseRequest, limits: BodyLimits
) -> tuple[dict[str, Any], bytes]:
    content_type = request.content_type
    if not is_json(content_type):
        length = request.content_length
        if length is not None and length > limits.max_bytes:
            raise PayloadTooLarge(f"the body is {length} bytes; the limit is {limits.max_bytes}")
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {content_type!r}"
        )
    content = request.content
    if content.is_eof():
        # The whole body came with the headers (the common case for JSON): take
        # it, with no timer to arm and cancel (~10 µs a request).
        body = content.read_nowait()
        if len(body) > limits.max_bytes:
            raise PayloadTooLarge(f"the body is larger than the limit of {limits.max_bytes} bytes")
    else:
        try:
            async with asyncio.timeout(limits.timeout_seconds):
                body = await read_body(request, limits.max_bytes)
        except TimeoutError:
            message = f"the body did not arrive within {limits.timeout_seconds:g}s"
            raise RequestTimeout(message) from None
    if not body.strip():
        return {}, body
    try:
        data = parse_input(body)
    except JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None
    except InputError as exc:
        raise BadRequest(f"the body is refused: {exc}", code="unsupported_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object", code="malformed_json")
    return data, body
