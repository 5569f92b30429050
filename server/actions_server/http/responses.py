"""aiohttp responses: a run's answer (JSON, bytes, a stream, a redirect, cookies, or
a kept answer replayed), the one error body, and the answer to an exception that
nothing else answered. Every response carries `x-trace-id`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from typing import Any

from aiohttp import web

from ..answers import Result, answer_status
from ..errors import ActionError, InternalError
from ..jsonutil import dumps
from ..response import Cookie
from .errors import error_json, from_aiohttp
from .whole import WholeResponse

log = logging.getLogger("actions_server.http")

TRACE_HEADER = "x-trace-id"
JSON = "application/json"
REPLAYED_HEADER = "Idempotent-Replayed"


def json_response(data: Any, status: int, trace_id: str) -> WholeResponse:
    headers = {"Content-Type": JSON, TRACE_HEADER: trace_id}
    return WholeResponse(body=dumps(data), status=status, headers=headers)


def error_response(error: ActionError, trace_id: str) -> WholeResponse:
    headers = {"Content-Type": JSON, TRACE_HEADER: trace_id, **error.headers}
    return WholeResponse(body=error_json(error, trace_id), status=error.status, headers=headers)


def failure_response(exc: Exception, trace_id: str, what: str) -> WholeResponse:
    """The answer to an exception nothing answered: aiohttp's own refusals keep
    their 4xx status; anything else is a 500, its traceback logged once as `what`."""
    if isinstance(exc, ActionError):
        return error_response(exc, trace_id)
    if isinstance(exc, web.HTTPClientError):
        return error_response(from_aiohttp(exc), trace_id)
    log.error(what, exc_info=exc, extra={"trace_id": trace_id})
    return error_response(InternalError(), trace_id)


def answer(result: Result, status: int, trace_id: str) -> web.StreamResponse:
    """The response to a run that succeeded (a stream is sent by `stream`, not here)."""
    replayed = result.replayed
    if replayed is not None:
        headers = {**replayed.headers, TRACE_HEADER: trace_id, REPLAYED_HEADER: "true"}
        return WholeResponse(body=replayed.body, status=replayed.status, headers=headers)
    response = result.response
    if response is None and not result.cookies:  # the common case: plain JSON
        if result.output is None:
            return WholeResponse(
                status=204 if status == 200 else status, headers={TRACE_HEADER: trace_id}
            )
        headers = {"Content-Type": JSON, TRACE_HEADER: trace_id}
        return WholeResponse(body=result.json, status=status, headers=headers)
    final = answer_status(response, result.output, status)
    headers = {TRACE_HEADER: trace_id}
    body: Any = None
    if response is not None and response.is_raw:
        body = response.body
        headers["Content-Type"] = response.content_type or "application/octet-stream"
    elif result.output is not None:
        body = result.json
        headers["Content-Type"] = JSON
    if response is not None:
        headers.update(response.headers)
    sent = WholeResponse(body=body, status=final, headers=headers)
    for cookie in (*result.cookies, *(response.cookies if response is not None else ())):
        set_cookie(sent, cookie)
    return sent


async def stream(
    request: web.BaseRequest,
    result: Result,
    status: int,
    trace_id: str,
    extra: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Send a Response whose body is an async iterable of bytes, chunk by chunk."""
    response = result.response
    assert response is not None
    sent = web.StreamResponse(
        status=answer_status(response, result.output, status),
        headers={
            TRACE_HEADER: trace_id,
            "Content-Type": response.content_type or "application/octet-stream",
            **response.headers,
            **(extra or {}),
        },
    )
    if response.content_length is not None:
        sent.content_length = response.content_length
    for cookie in (*result.cookies, *response.cookies):
        set_cookie(sent, cookie)
    await sent.prepare(request)
    body: AsyncIterable[bytes] = response.body
    if request.method != "HEAD":
        async for chunk in body:
            await sent.write(chunk)
    await sent.write_eof()
    return sent


def set_cookie(response: web.StreamResponse, cookie: Cookie) -> None:
    expires = None
    if cookie.expires is not None:
        expires = cookie.expires.strftime("%a, %d %b %Y %H:%M:%S GMT")
    response.set_cookie(
        cookie.name,
        cookie.value,
        max_age=cookie.max_age,
        expires=expires,
        path=cookie.path or "/",
        domain=cookie.domain,
        secure=cookie.secure or None,
        httponly=cookie.http_only or None,
        samesite=cookie.same_site,
    )
