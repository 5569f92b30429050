"""`POST /mcp` (MCP's Streamable HTTP transport, stateless) and the OAuth protected
resource metadata (RFC 9728) that tells clients where to get a token.

Every message is one POST answered with one JSON body (never an SSE stream), and
nothing is kept between them: no session id is minted, so N instances behind a
load balancer without affinity answer alike. GET and DELETE (a stream, a
session to end) are 405. A request whose `Origin` is neither loopback nor in
`mcp.allowed_origins` is 403: a web page must not reach a local server through
DNS rebinding. A notification, or a response a client sends to nothing asked,
is 202 with no body. JSON-RPC errors go with the status the transport gives
their code (protocol.HTTP_STATUS); a tool's own failure is a 200 result.

Callers are known exactly as for the HTTP API (http/caller.py): the bearer token,
`x-org-id`, the client address. A tool that needs a caller and has none answers
401 with `WWW-Authenticate: Bearer resource_metadata="…"` pointing at the
metadata document.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..errors import ActionError
from ..http.caller import caller_of, parse_networks
from ..http.cors import normal_origin
from ..http.inputs import is_json, read_body
from ..jsonutil import InputError, JSONDecodeError, dumps, parse_input
from ..registry import Registry
from ..runtime import Runtime
from .protocol import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    ROUTING_HEADERS,
    UNNAMED_HTTP_VERSION,
    Message,
    RpcError,
    negotiated,
    parse_message,
    protocol_of,
    response,
)
from .server import McpServer, Unauthenticated
from .settings import McpSettings

log = logging.getLogger("actions_server.mcp")

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
TRACE_HEADER = "x-trace-id"
_JSON = "application/json"

Endpoint = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]


class McpEndpoint:
    """The HTTP side of MCP: one POST, one message, one JSON answer."""

    def __init__(self, runtime: Runtime, settings: McpSettings) -> None:
        config = runtime.config.server
        self.settings = settings
        self.server = McpServer(runtime.executor, runtime.registry, settings)
        self.verifier = runtime.executor.auth.verifier
        self.trusted_proxies = parse_networks(config.trusted_proxies)
        self.max_bytes = config.max_body_bytes
        self.body_timeout = config.body_timeout_seconds

    @property
    def paths(self) -> dict[str, Endpoint]:
        """Built-in paths → their handler: the endpoint and its metadata document
        (at the root and, as RFC 9728 places it for a resource at /mcp, below)."""
        return {
            PATH: self.handle,
            METADATA_PATH: self.resource_metadata,
            METADATA_PATH + PATH: self.resource_metadata,
        }

    def use_registry(self, registry: Registry) -> None:
        self.server.use_registry(registry)

    async def handle(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        message: Message | None = None
        try:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal_response(*refusal, trace_id)
            message = parse_message(await self._read(request))
            if not message.is_request:
                return web.Response(status=202, headers={TRACE_HEADER: trace_id})
            if message.method == "initialize":
                version = negotiated(message.params.get("protocolVersion"))
            else:
                headers = routing_headers(request)
                version = protocol_of(message, headers, unnamed=UNNAMED_HTTP_VERSION)
            caller = caller_of(request, self.verifier, self.trusted_proxies, with_ip=True)
            assert message.id is not None
            result = await self.server.answer(message, version, caller, trace_id, http=True)
            return json_response(response(message.id, result), 200, trace_id)
        except Unauthenticated as exc:
            request_id = message.id if message is not None else None
            answer = json_response(exc.to_json(request_id), 401, trace_id)
            answer.headers["WWW-Authenticate"] = self.challenge(request, exc.error)
            return answer
        except RpcError as exc:
            request_id = message.id if message is not None else None
            return json_response(exc.to_json(request_id), exc.status, trace_id)
        except Exception:
            log.error("MCP request failed", exc_info=True, extra={"trace_id": trace_id})
            error = RpcError(
                INTERNAL_ERROR, f"internal error; see the server log for trace id {trace_id}"
            )
            return json_response(error.to_json(message.id if message else None), 500, trace_id)

    def _refusal(self, request: web.BaseRequest) -> tuple[int, str, dict[str, str]] | None:
        """Why the request is refused before its body is read: (status, message, headers)."""
        if request.method != "POST":
            return (
                405,
                f"{PATH} takes POST only: there is no session to end and no stream to open",
                {"Allow": "POST"},
            )
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin):
            return 403, f"requests from origin {origin!r} are not allowed (mcp.allowed_origins)", {}
        if not is_json(request.content_type):
            return 415, "the body must be one JSON-RPC message (Content-Type: application/json)", {}
        return None

    async def _read(self, request: web.BaseRequest) -> Any:
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await read_body(request, self.max_bytes)
        except TimeoutError:
            raise RpcError(
                INVALID_REQUEST, f"the body did not arrive within {self.body_timeout:g}s"
            ) from None
        except ActionError as exc:  # 413
            raise RpcError(INVALID_REQUEST, exc.message) from None
        try:
            return parse_input(body)
        except JSONDecodeError as exc:
            raise RpcError(PARSE_ERROR, f"the body is not valid JSON: {exc}") from None
        except InputError as exc:
            raise RpcError(INVALID_REQUEST, f"the body is refused: {exc}") from None

    def origin_allowed(self, origin: str) -> bool:
        return normal_origin(origin) in self.settings.allowed_origins or is_loopback_origin(origin)

    # --- OAuth protected resource metadata (RFC 9728) -------------------------------

    def resource(self, request: web.BaseRequest) -> str:
        """This endpoint's resource identifier: configured, or its URL as reached."""
        return self.settings.resource or f"{request.scheme}://{request.host}{PATH}"

    def metadata_url(self, request: web.BaseRequest) -> str:
        """Where the metadata of `resource` lives: the well-known path inserted between
        its origin and its path (RFC 9728 §3.1)."""
        parts = urlsplit(self.resource(request))
        return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{parts.path.rstrip('/')}"

    async def resource_metadata(
        self, request: web.BaseRequest, trace_id: str
    ) -> web.StreamResponse:
        document: dict[str, Any] = {"resource": self.resource(request)}
        if self.settings.authorization_servers:
            document["authorization_servers"] = list(self.settings.authorization_servers)
        document["bearer_methods_supported"] = ["header"]
        document["resource_name"] = self.settings.server_name
        return json_response(document, 200, trace_id)

    def challenge(self, request: web.BaseRequest, error: ActionError) -> str:
        """`WWW-Authenticate` for a 401: where the metadata is, and, for a refused
        token, why (RFC 6750 §3: no error code when no token was sent)."""
        value = f'Bearer resource_metadata="{self.metadata_url(request)}"'
        if error.code == "invalid_token":
            reason = error.message.replace('"', "'").replace("\\", "/")
            value += f', error="invalid_token", error_description="{reason}"'
        return value


def routing_headers(request: web.BaseRequest) -> dict[str, str]:
    """The routing headers that were sent; one sent twice is a mismatch (a reader of
    the first and a reader of the last would disagree)."""
    headers = request.headers
    found: dict[str, str] = {}
    for name in ROUTING_HEADERS:
        values = headers.getall(name, ())
        if len(values) > 1:
            raise RpcError(HEADER_MISMATCH, f"the {name} header is sent {len(values)} times")
        if values:
            found[name] = values[0]
    return found


def is_loopback_origin(origin: str) -> bool:
    """`http://localhost:6274`, `http://127.0.0.1`, `http://[::1]:3000`..."""
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def json_response(data: Any, status: int, trace_id: str) -> web.Response:
    headers = {"Content-Type": _JSON, TRACE_HEADER: trace_id}
    return web.Response(body=dumps(data), status=status, headers=headers)


def refusal_response(
    status: int, message: str, headers: dict[str, str], trace_id: str
) -> web.Response:
    """A refusal before any message was read: a JSON-RPC error without an id."""
    answer = json_response(RpcError(INVALID_REQUEST, message).to_json(None), status, trace_id)
    answer.headers.update(headers)
    return answer
