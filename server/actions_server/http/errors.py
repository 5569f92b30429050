"""The one error body of every HTTP error (DESIGN.md §5), as bytes.

`{"error": {"code", "message", "details": [{"path", "message"}], "trace_id"}}`
"""

from __future__ import annotations

from typing import Any

from ..errors import ActionError
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
