"""Answers one MCP request for one caller, the same over HTTP and stdio.

`tools/call` is a run like any other: `Executor.run(action, arguments,
trigger="mcp", caller=...)`, so the action's guards, input validation, its one
transaction and the run record are those of an HTTP request. A tool's failure
is a result the model can read (`isError: true` and the error's message, the
failing fields and the trace id; never a traceback), not a protocol error: only
an unknown tool or malformed arguments are. One exception: over HTTP a call that
needs a caller and has none (401) is answered 401, so that an OAuth-capable client
signs in (endpoint.py adds the challenge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..auth import AuthContext
from ..errors import ActionError
from ..executor import Executor
from ..guards import Caller
from ..registry import Registry, Tool
from .catalogue import Catalogue, structured
from .protocol import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    UNAUTHENTICATED,
    Message,
    RpcError,
    complete,
    discover_result,
    initialize_result,
    is_modern,
    tools_list_result,
)
from .settings import McpSettings

TRIGGER = "mcp"  # runs are recorded (and shown in the dashboard) under this trigger


class Unauthenticated(RpcError):
    """The tool needs a caller and the request has none, or its token was refused."""

    def __init__(self, error: ActionError) -> None:
        super().__init__(UNAUTHENTICATED, error.message, {"code": error.code})
        self.error = error


class McpServer:
    """The tools of the current registry, run through the executor."""

    def __init__(self, executor: Executor, registry: Registry, settings: McpSettings) -> None:
        self.executor = executor
        self.settings = settings
        self.catalogue = Catalogue(registry)

    def use_registry(self, registry: Registry) -> None:
        """Offer `registry`'s tools from the next message on."""
        self.catalogue = Catalogue(registry)

    async def answer(
        self, message: Message, version: str, caller: Caller, trace_id: str, *, http: bool
    ) -> dict[str, Any]:
        """The result of `message` (a request) read under `version`; RpcError for a
        protocol error. `http`: a 401 is raised as Unauthenticated, not a result."""
        method = message.method
        params = message.params
        settings = self.settings
        if method == "tools/call":
            return await self.call(params, version, caller, trace_id, http=http)
        if method == "tools/list":
            auth = AuthContext(self.executor.auth, caller.principal)
            tools = self.catalogue.listed(auth, caller, modern=is_modern(version))
            return tools_list_result(tools, version, private=self.catalogue.private)
        if method == "initialize":
            requested = params.get("protocolVersion")
            return initialize_result(requested, settings.server_info, settings.instructions)
        if method == "server/discover":
            return discover_result(settings.server_info, settings.instructions)
        if method == "ping":
            return complete({}, version)
        raise RpcError(
            METHOD_NOT_FOUND, f"method {method!r} is not served (this server offers tools only)"
        )

    async def call(
        self,
        params: Mapping[str, Any],
        version: str,
        caller: Caller,
        trace_id: str,
        *,
        http: bool,
    ) -> dict[str, Any]:
        name = params.get("name")
        tool = self.catalogue.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"unknown tool {name!r}")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "arguments must be an object")
        try:
            result = await self.executor.run(
                tool.action, dict(arguments), trigger=TRIGGER, caller=caller, trace_id=trace_id
            )
        except ActionError as exc:
            if http and exc.status == 401:
                raise Unauthenticated(exc) from None
            return complete(failure(exc, trace_id), version)
        answer = success(tool, result.output, result.json, modern=is_modern(version))
        return complete(answer, version)


def success(tool: Tool, output: Any, encoded: bytes, *, modern: bool) -> dict[str, Any]:
    """The output as JSON text, and as `structuredContent` when the tool declares an
    output schema the era can carry (the same JSON, sent once encoded)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": encoded.decode()}]}
    if structured(tool, modern=modern) and (modern or isinstance(output, dict)):
        result["structuredContent"] = orjson.Fragment(encoded)
    result["isError"] = False
    return result


def failure(error: ActionError, trace_id: str) -> dict[str, Any]:
    """An error the model can act on: what is wrong, each failing field, the trace id."""
    lines = [error.message]
    lines.extend(f"{detail.path or '/'}: {detail.message}" for detail in error.details)
    lines.append(f"({error.status} {error.code}; trace id {trace_id})")
    return {"content": [{"type": "text", "text": "\n".join(lines)}], "isError": True}
