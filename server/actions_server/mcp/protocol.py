"""MCP's JSON-RPC messages, decided as pure functions: which protocol revision a
message speaks, whether its routing headers agree with its body, and the shape of
each answer.

Two eras are served on one endpoint, statelessly (no session, nothing kept
between messages, so any instance can answer any message):

- **modern** (2026-07-28): every request carries its revision in
  `params._meta["io.modelcontextprotocol/protocolVersion"]`; over HTTP the
  `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers must repeat the
  body (-32020 otherwise), and a revision not served is -32022 naming the
  served ones.
- **legacy** (2025-11-25 and earlier): an `initialize` handshake is answered,
  then each request is read under the revision its `MCP-Protocol-Version` header
  names (2025-03-26 when absent, as the specification allows). No
  `Mcp-Session-Id` is minted; JSON answers only, never an SSE stream.

Errors are `RpcError`s: a JSON-RPC code, a message, optional data, and the HTTP
status the Streamable HTTP transport sends them with.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ActionsServerError

MODERN_VERSIONS = ("2026-07-28",)
HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
SUPPORTED_VERSIONS = (*MODERN_VERSIONS, *HANDSHAKE_VERSIONS)  # newest first
UNNAMED_HTTP_VERSION = "2025-03-26"  # a request without MCP-Protocol-Version

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
ROUTING_HEADERS = (VERSION_HEADER, METHOD_HEADER, NAME_HEADER)
# The methods whose target is repeated in Mcp-Name, and the parameter that names it.
NAMED_BY = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022
# Ours, outside JSON-RPC's reserved range: the tool needs a caller and there is none
# (over HTTP it comes with 401 and a WWW-Authenticate challenge).
UNAUTHENTICATED = -31401

HTTP_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    UNSUPPORTED_VERSION: 400,
    METHOD_NOT_FOUND: 404,
    UNAUTHENTICATED: 401,
}

RequestId = str | int


class RpcError(ActionsServerError):
    """A JSON-RPC error answer: code, message, optional data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @property
    def status(self) -> int:
        """The HTTP status Streamable HTTP sends this error with."""
        return HTTP_STATUS.get(self.code, 500)

    def to_json(self, request_id: RequestId | None) -> dict[str, Any]:
        """The error response; without an `id` when the request's is not known."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        answer: dict[str, Any] = {"jsonrpc": "2.0"}
        if request_id is not None:
            answer["id"] = request_id
        answer["error"] = error
        return answer


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One JSON-RPC message from a client. A response the client sends (to nothing
    this server asked) has no method and is ignored."""

    id: RequestId | None  # None: a notification
    method: str | None
    params: Mapping[str, Any]

    @property
    def is_request(self) -> bool:
        return self.id is not None and self.method is not None


def parse_message(data: Any) -> Message:
    """A decoded JSON-RPC body as a Message; RpcError when it is not one."""
    if isinstance(data, list):
        raise RpcError(INVALID_REQUEST, "JSON-RPC batches are not supported: send one message")
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'not a JSON-RPC 2.0 message (it needs "jsonrpc": "2.0")')
    raw_id = data.get("id")
    request_id = raw_id if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    if "method" not in data:
        if "result" in data or "error" in data:
            return Message(id=request_id, method=None, params={})
        raise RpcError(INVALID_REQUEST, "the message has no method")
    method = data["method"]
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "method must be a string")
    if "id" in data and request_id is None:
        raise RpcError(INVALID_REQUEST, "a request id must be a string or an integer")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object")
    return Message(id=request_id, method=method, params=params)


def protocol_of(message: Message, headers: Mapping[str, str] | None, *, unnamed: str) -> str:
    """The revision `message` speaks, checked against the routing `headers` (None on
    stdio, which has no headers); RpcError when they disagree or it is not served.

    `headers` maps each of ROUTING_HEADERS that was sent to its value. `unnamed`
    is the revision of a legacy message that names none: UNNAMED_HTTP_VERSION over
    HTTP, the one its `initialize` agreed on stdio.
    """
    meta = message.params.get("_meta")
    claimed = meta.get(PROTOCOL_VERSION_KEY) if isinstance(meta, dict) else None
    stated = headers.get(VERSION_HEADER) if headers is not None else None
    if claimed is not None or stated in MODERN_VERSIONS:
        if not isinstance(claimed, str):
            raise RpcError(
                INVALID_PARAMS, f"params._meta must carry {PROTOCOL_VERSION_KEY!r} (a string)"
            )
        if headers is not None:
            if stated != claimed:
                told = "is missing" if stated is None else f"says {stated!r}"
                raise RpcError(
                    HEADER_MISMATCH,
                    f"the {VERSION_HEADER} header {told}; the body's _meta says {claimed!r}",
                )
            check_routing(message, headers, required=True)
        if claimed not in MODERN_VERSIONS:
            raise unsupported(claimed)
        return claimed
    if headers is None or stated is None:
        return unnamed
    if stated not in HANDSHAKE_VERSIONS:
        raise unsupported(stated)
    check_routing(message, headers, required=False)
    return stated


def is_modern(version: str) -> bool:
    return version in MODERN_VERSIONS


def unsupported(requested: str) -> RpcError:
    return RpcError(
        UNSUPPORTED_VERSION,
        "Unsupported protocol version",
        {"supported": list(SUPPORTED_VERSIONS), "requested": requested},
    )


def check_routing(message: Message, headers: Mapping[str, str], *, required: bool) -> None:
    """Mcp-Method and Mcp-Name must repeat the body: an intermediary may have routed
    on them. `required`: a missing header is a mismatch too (the modern revision)."""
    method = headers.get(METHOD_HEADER)
    if method is None:
        if required:
            raise RpcError(HEADER_MISMATCH, f"the {METHOD_HEADER} header is missing")
    elif method != message.method:
        raise RpcError(
            HEADER_MISMATCH,
            f"the {METHOD_HEADER} header says {method!r}; the body's method is {message.method!r}",
        )
    key = NAMED_BY.get(message.method or "")
    if key is None:
        return
    named = message.params.get(key)
    header = headers.get(NAME_HEADER)
    if header is None:
        if required and named is not None:
            raise RpcError(HEADER_MISMATCH, f"the {NAME_HEADER} header is missing")
        return
    value = decode_header_value(header)
    if value is None:
        raise RpcError(HEADER_MISMATCH, f"the {NAME_HEADER} header is not valid base64")
    if value != named:
        raise RpcError(
            HEADER_MISMATCH,
            f"the {NAME_HEADER} header says {value!r}; the body's {key} is {named!r}",
        )


_SENTINEL_START, _SENTINEL_END = "=?base64?", "?="


def decode_header_value(value: str) -> str | None:
    """A header value as sent: `=?base64?…?=` is base64 of UTF-8; None when that is broken."""
    if not (value.startswith(_SENTINEL_START) and value.endswith(_SENTINEL_END)):
        return value
    encoded = value[len(_SENTINEL_START) : len(value) - len(_SENTINEL_END)]
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


# --- answers ---------------------------------------------------------------------------

TOOLS_TTL_MS = 60_000  # clients may reuse a tools/list for a minute (a reload may change it)
DISCOVER_TTL_MS = 3_600_000


def negotiated(requested: Any) -> str:
    """The handshake revision to answer `initialize` with: the client's when served,
    else the newest (the client then decides whether it can speak it)."""
    return requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[0]


def capabilities() -> dict[str, Any]:
    return {"tools": {"listChanged": False}}


def initialize_result(
    requested: Any, server_info: Mapping[str, str], instructions: str | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "protocolVersion": negotiated(requested),
        "capabilities": capabilities(),
        "serverInfo": dict(server_info),
    }
    if instructions:
        result["instructions"] = instructions
    return result


def discover_result(server_info: Mapping[str, str], instructions: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": list(SUPPORTED_VERSIONS),
        "capabilities": capabilities(),
        "ttlMs": DISCOVER_TTL_MS,
        "cacheScope": "public",
        "_meta": {SERVER_INFO_KEY: dict(server_info)},
    }
    if instructions:
        result["instructions"] = instructions
    return result


def complete(result: dict[str, Any], version: str) -> dict[str, Any]:
    """`result` as `version` spells it: the modern revision tags every result."""
    if is_modern(version):
        result["resultType"] = "complete"
    return result


def tools_list_result(
    tools: list[dict[str, Any]], version: str, *, private: bool
) -> dict[str, Any]:
    """`private`: the list depends on who asks, so no shared cache may keep it."""
    result: dict[str, Any] = {"tools": tools}
    if is_modern(version):
        result["ttlMs"] = TOOLS_TTL_MS
        result["cacheScope"] = "private" if private else "public"
    return complete(result, version)


def response(request_id: RequestId, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}
