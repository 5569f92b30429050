"""The one error body of every HTTP error (docs/http.md#errors), as bytes.

`{"error": {"code", "message", "details": [{"path", "message"}], "trace_id"}}`

aiohttp's own refusals (`web.HTTPClientError`, such as the 413 of
`request.post()` past `client_max_size`) are told in the same body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import ActionError, PayloadTooLarge
from ..jsonutil import dumps


def error_body(error: ActionError, trace_id: str) -> dict[str, Any]:
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "details": [d.to_json() for d in error.details],
            "trace_id": trace_id,
        }
    }


def error_json(error: ActionError, trace_id: str) -> bytes:
    return dumps(error_body(error, trace_id))


def from_aiohttp(exc: web.HTTPClientError) -> ActionError:
    """aiohttp's refusal as our error, keeping its status."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        reason = (exc.text or "").rstrip(".")  # "Maximum request body size N exceeded"
        return PayloadTooLarge(f"the body is too large ({reason[:1].lower()}{reason[1:]})")
    return ActionError(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
