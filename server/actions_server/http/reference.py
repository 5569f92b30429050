"""`GET /openapi.json`, `GET /docs` (Swagger UI) and `GET /docs/reference` (the
reference as one page, without a script): the API of the registry being served.

The document and the reference page are built when a registry is put in service
(at start and on every reload: a few milliseconds) and kept as the bytes every
request gets. They belong to one registry and are swapped with it, so a reload
never serves one registry's routes beside another's reference. Swagger UI reads
`/openapi.json`, so it follows too; its files are the same for every registry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..config import Config
from ..errors import InternalError
from ..jsonutil import dumps
from ..openapi import (
    CONTENT_SECURITY_POLICY,
    asset,
    build_openapi,
    render_docs_page,
    swagger_page,
)
from ..registry import Registry
from .errors import error_json

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
REFERENCE_PATH = "/docs/reference"
ASSET_NAMES = ("swagger-ui.css", "swagger-ui-bundle.js", "init.js")
_TRACE_HEADER = "x-trace-id"

log = logging.getLogger("actions_server.http")

Endpoint = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]


class _Reference:
    """The reference of one registry, as the bytes each endpoint answers with."""

    __slots__ = ("html", "json", "swagger")

    def __init__(self, document: dict[str, Any]) -> None:
        self.json = dumps(document)
        self.html = render_docs_page(document).encode()
        self.swagger = swagger_page(str(document["info"]["title"])).encode()


class ApiReference:
    """Answers the two reference endpoints for the registry most recently put in service."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self._registry = registry
        self._built: _Reference | None = None
        self._failed = False

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        found: dict[str, Endpoint] = {
            OPENAPI_PATH: self.openapi_json,
            DOCS_PATH: self.swagger_ui,
            REFERENCE_PATH: self.docs,
        }
        for name in ASSET_NAMES:
            found[f"{DOCS_PATH}/{name}"] = self.swagger_asset
        return found

    def use_registry(self, registry: Registry) -> None:
        # Built when first asked for, not here: for an app of hundreds of actions
        # the document takes longer than the rest of a reload, and most reloads
        # are never followed by a look at the reference.
        self._registry, self._built, self._failed = registry, None, False

    @property
    def _current(self) -> _Reference | None:
        if self._built is None and not self._failed:
            # A bug in generating the reference must cost the reference, not the server.
            try:
                self._built = _Reference(build_openapi(self._registry, self.config))
            except Exception:
                log.exception("cannot build the OpenAPI document")
                self._failed = True
        return self._built

    async def openapi_json(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        if self._current is None:
            return _unavailable(trace_id)
        headers = {"Content-Type": "application/json", _TRACE_HEADER: trace_id}
        return web.Response(body=self._current.json, headers=headers)

    async def docs(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        if self._current is None:
            return _unavailable(trace_id)
        headers = {"Content-Type": "text/html; charset=utf-8", _TRACE_HEADER: trace_id}
        return web.Response(body=self._current.html, headers=headers)

    async def swagger_ui(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        if self._current is None:
            return _unavailable(trace_id)
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            _TRACE_HEADER: trace_id,
        }
        return web.Response(body=self._current.swagger, headers=headers)

    async def swagger_asset(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        name = request.rel_url.path.rstrip("/").rsplit("/", 1)[-1]
        body, content_type = asset(name)
        headers = {
            "Content-Type": content_type,
            "Cache-Control": "public, max-age=86400",  # the page asks by version (?v=)
            "X-Content-Type-Options": "nosniff",
            _TRACE_HEADER: trace_id,
        }
        return web.Response(body=body, headers=headers)


def _unavailable(trace_id: str) -> web.Response:
    error = InternalError("the API reference could not be built; see the server log")
    headers = {"Content-Type": "application/json", _TRACE_HEADER: trace_id}
    return web.Response(body=error_json(error, trace_id), status=500, headers=headers)
