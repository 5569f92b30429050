"""The pure parts of http/connections.py: which status a parse error gets, and the
raw response written to a connection no request owns."""

from __future__ import annotations

import json

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from actions_server.errors import ActionError
from actions_server.http.connections import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_TARGET_BYTES,
    TOO_MANY_CONNECTIONS,
    protocol_error,
    raw_response,
)


def test_the_two_line_limits_differ_so_that_a_long_line_can_be_told_apart() -> None:
    assert MAX_TARGET_BYTES != MAX_HEADER_BYTES


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (LineTooLong(b"/aaaa...", MAX_TARGET_BYTES), 414, "uri_too_long"),
        (LineTooLong(b"token...", MAX_HEADER_BYTES), 431, "headers_too_large"),
        (BadHttpMessage("Too many headers received"), 431, "headers_too_large"),
        (BadHttpMethod("G\x01T"), 400, "malformed_request"),
        (BadHttpMethod(error="Received HTTPS traffic on an HTTP port"), 400, "malformed_request"),
        (BadStatusLine("GET / HTTP/7.1"), 400, "malformed_request"),
        (InvalidURLError("/\x00secret"), 400, "malformed_request"),
        (InvalidHeader(b"X-Secret\x00"), 400, "malformed_request"),
        (BadHttpMessage("Duplicate 'Host' header found."), 400, "malformed_request"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_a_parse_error_gets_its_status_and_never_quotes_the_request(
    exc: HttpProcessingError, status: int, code: str
) -> None:
    error = protocol_error(exc)
    assert (error.status, error.code) == (status, code)
    for quoted in ("aaaa", "token", "G\x01T", "7.1", "secret", "Secret", "Host"):
        assert quoted not in error.message
    assert str(MAX_HEADERS) in protocol_error(BadHttpMessage("Too many headers received")).message


def test_raw_response_is_a_whole_http_response_in_the_error_body() -> None:
    raw = raw_response(TOO_MANY_CONNECTIONS, "t" * 32)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers == {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "x-trace-id": "t" * 32,
        "Retry-After": "1",
        "Connection": "close",
    }
    assert json.loads(body)["error"] == {
        "code": "too_many_connections",
        "message": TOO_MANY_CONNECTIONS.message,
        "details": [],
        "trace_id": "t" * 32,
    }
    assert raw_response(ActionError(408, "request_timeout", "late"), "x" * 32).startswith(
        b"HTTP/1.1 408 Request Timeout\r\n"
    )
