"""The aiohttp application: built-in endpoints, then every action route.

All action routes go through one catch-all handler that asks our own Router
(not aiohttp's), so that a reload can swap the whole route table at once and
404/405 answer in the one error body. The hot path per request: match the
route, read the input, run the executor, write JSON; no middleware.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from ..errors import ActionError, InternalError
from ..executor import new_trace_id
from ..jsonutil import dumps
from ..registry import Registry
from ..runtime import Runtime
from .errors import error_json
from .inputs import read_input
from .routes import Router

log = logging.getLogger("actions_server.http")

TRACE_HEADER = "x-trace-id"
# A caller's trace id is kept when it is plain enough to put in logs and headers.
_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}\Z")
_JSON = "application/json"


class HttpFront:
    """Turns requests into executor runs; holds the current route table."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.max_body = runtime.config.server.max_body_bytes
        self.router = Router(runtime.registry.routes)

    def use_registry(self, registry: Registry) -> None:
        """Serve `registry` from the next request on (in-flight requests finish on the old one)."""
        router = Router(registry.routes)
        self.runtime.registry = registry
        self.router = router

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        incoming = request.headers.get(TRACE_HEADER)
        trace_id = incoming if incoming and _TRACE_ID.match(incoming) else new_trace_id()
        try:
            route, params = self.router.match(request.method, request.raw_path.partition("?")[0])
            payload = await read_input(request, route.action, params, self.max_body)
            output = await self.runtime.executor.run(
                route.action, payload, trigger="api", trace_id=trace_id
            )
        except ActionError as exc:
            return error_response(exc, trace_id)
        except Exception:
            log.exception("request failed outside the executor", extra={"trace_id": trace_id})
            return error_response(InternalError(), trace_id)
        if output is None:
            status = 204 if route.status == 200 else route.status
            return web.Response(status=status, headers={TRACE_HEADER: trace_id})
        return web.Response(
            body=dumps(output),
            status=route.status,
            content_type=_JSON,
            headers={TRACE_HEADER: trace_id},
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"}, 200, new_trace_id())

    async def readyz(self, request: web.Request) -> web.Response:
        trace_id = new_trace_id()
        if await self.runtime.database.ping():
            return json_response({"status": "ready"}, 200, trace_id)
        return json_response({"status": "database unavailable"}, 503, trace_id)


def json_response(data: Any, status: int, trace_id: str) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, content_type=_JSON, headers={TRACE_HEADER: trace_id}
    )


def error_response(error: ActionError, trace_id: str) -> web.Response:
    headers = {TRACE_HEADER: trace_id, **error.headers}
    return web.Response(
        body=error_json(error, trace_id), status=error.status, content_type=_JSON, headers=headers
    )


FRONT = web.AppKey("front", HttpFront)


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=runtime.config.server.max_body_bytes)
    front = HttpFront(runtime)
    app[FRONT] = front
    app.router.add_get("/healthz", front.healthz, allow_head=True)
    app.router.add_get("/readyz", front.readyz, allow_head=True)
    app.router.add_route("*", "/{tail:.*}", front.dispatch)
    return app
