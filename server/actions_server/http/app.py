"""The HTTP front: aiohttp's low-level server with one handler that routes itself.

Every request goes to `HttpFront.handle`, which answers the built-in endpoints
from a dict and everything else through our Router. There is no
`web.Application`: its router, middleware chain and signals cost about as much
per request as all of actions-server's own work, and a reload must swap the
whole route table at once anyway (see docs/performance.md). 404 and 405 answer
in the one error body; every response carries `x-trace-id`. The built-in
endpoints and the dashboard answer exceptions as actions do (`failure_response`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .. import metrics
from ..auth import AuthContext
from ..dashboard.views import Dashboard
from ..errors import ActionError, Forbidden, InternalError, MethodNotAllowed
from ..executor import new_trace_id
from ..guards import identity_denial
from ..jsonutil import dumps
from ..queue import store as queue_store
from ..realtime.hub import Realtime
from ..registry import Registry
from ..runtime import Runtime
from ..storage import check_key
from ..storage.signing import ROUTE as STORAGE_ROUTE
from ..storage.signing import verify
from .accesslog import AccessLogger
from .caller import Network, caller_of, forwarded_for, hops, in_networks, parse_networks
from .connections import ConnectionLimits, ConnectionServer
from .errors import error_json, from_aiohttp
from .inputs import BodyLimits, read_input
from .reference import ApiReference
from .routes import Router, normalize_path
from .uploads import close_files

log = logging.getLogger("actions_server.http")

TRACE_HEADER = "x-trace-id"
# A caller's trace id is kept when it is plain enough to put in logs and headers.
_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}\Z")
_JSON = "application/json"

Endpoint = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]


class HttpFront:
    """Turns requests into executor runs; holds the current route table."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        server = runtime.config.server
        self.limits = BodyLimits(
            max_bytes=server.max_body_bytes,
            timeout_seconds=server.body_timeout_seconds,
            max_file_bytes=runtime.config.storage.max_object_bytes,
        )
        self.router = Router(runtime.registry.routes)
        self.needs_client_ip = needs_client_ip(runtime.registry)
        self.needs_identity = needs_identity(runtime.registry)
        self.builtins: dict[str, Endpoint] = {"/healthz": self.healthz, "/readyz": self.readyz}
        self.reference = ApiReference(runtime.config, runtime.registry)
        self.builtins.update(self.reference.endpoints)  # /openapi.json, /docs
        if runtime.config.metrics.enabled:
            self.builtins["/metrics"] = self.metrics
        self.metrics_allowed = parse_networks(runtime.config.metrics.allow)
        self.dashboard = Dashboard(runtime) if runtime.config.dashboard.enabled else None
        self.verifier = runtime.executor.auth.verifier
        self.local_storage = runtime.executor.services.local_storage
        self.trusted_proxies = parse_networks(runtime.config.server.trusted_proxies)
        self.realtime: Realtime | None = None
        if runtime.config.realtime.enabled:  # WebSocket channels (docs/realtime.md)
            self.realtime = Realtime(runtime, self.trusted_proxies)
            self.builtins[runtime.config.realtime.path] = self.realtime.upgrade

    async def close(self) -> None:
        """Close what outlives requests (realtime sockets), before the server stops."""
        if self.realtime is not None:
            await self.realtime.close()

    def use_registry(self, registry: Registry) -> None:
        """Serve `registry` from the next request on (in-flight requests finish on the old one)."""
        router, with_ip, identity = (
            Router(registry.routes),
            needs_client_ip(registry),
            needs_identity(registry),
        )
        self.reference.use_registry(registry)
        self.runtime.executor.use_registry(registry)
        if self.realtime is not None:
            self.realtime.use_registry(registry)
        self.runtime.registry = registry
        self.router, self.needs_client_ip, self.needs_identity = router, with_ip, identity

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        incoming = request.headers.get(TRACE_HEADER)
        trace_id = incoming if incoming and _TRACE_ID.match(incoming) else new_trace_id()
        # rel_url, not raw_path: an absolute-form target (GET http://host/x) has a path too.
        path = normalize_path(request.rel_url.raw_path)
        builtin = self.builtins.get(path)
        if builtin is None and path.startswith(STORAGE_ROUTE) and self.local_storage is not None:
            builtin = self.signed_download
        if builtin is None and self.dashboard is not None and self.dashboard.owns(path):
            if request.method not in ("GET", "HEAD", "POST"):
                return error_response(MethodNotAllowed({"GET", "HEAD", "POST"}), trace_id)
            try:
                response = await self.dashboard.handle(request, path)
            except Exception as exc:
                return failure_response(exc, trace_id, "dashboard page failed")
            response.headers[TRACE_HEADER] = trace_id
            return response
        if builtin is not None:
            if request.method not in ("GET", "HEAD"):
                return error_response(MethodNotAllowed({"GET", "HEAD"}), trace_id)
            try:
                return await builtin(request, trace_id)
            except Exception as exc:
                return failure_response(exc, trace_id, "built-in endpoint failed")
        action_name = metrics.UNMATCHED
        try:
            route, params = self.router.match(request.method, path)
            action = route.action
            action_name = action.name
            with_ip = action.name in self.needs_client_ip
            caller = caller_of(request, self.verifier, self.trusted_proxies, with_ip=with_ip)
            if action.name in self.needs_identity and not caller.principal.is_authenticated:
                # Refuse before reading a body that could be megabytes long.
                auth = AuthContext(self.runtime.executor.auth, caller.principal)
                denial = identity_denial(auth, caller, action.run_as)
                if denial is not None:
                    raise denial
            payload = await read_input(request, action, params, self.limits)
            try:
                result = await self.runtime.executor.run(
                    route.action, payload, trigger="api", caller=caller, trace_id=trace_id
                )
            finally:
                close_files(payload)
        except ActionError as exc:
            response = error_response(exc, trace_id)
        except Exception as exc:
            response = failure_response(exc, trace_id, "request failed outside the executor")
        else:
            if result.output is None:
                status = 204 if route.status == 200 else route.status
                response = web.Response(status=status, headers={TRACE_HEADER: trace_id})
            else:
                headers = {"Content-Type": _JSON, TRACE_HEADER: trace_id}
                response = web.Response(body=result.json, status=route.status, headers=headers)
        metrics.observe_request(action_name, response.status, time.perf_counter() - started)
        return response

    async def signed_download(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        """A local object, for the holder of a URL from `ctx.storage.get_url`."""
        storage = self.local_storage
        assert storage is not None
        key = unquote(normalize_path(request.rel_url.raw_path)[len(STORAGE_ROUTE) :])
        query = request.query
        try:
            check_key(key)
            refused = verify(storage.url_secret, key, query.get("expires"), query.get("signature"))
            if refused is not None:
                raise Forbidden(refused, code="invalid_signature")
            info = await storage.stat(key)
        except ActionError as exc:
            return error_response(exc, trace_id)
        headers = {
            TRACE_HEADER: trace_id,
            "Content-Type": info.content_type or "application/octet-stream",
            # An uploaded HTML or SVG file is served from the API's (and the
            # dashboard's) origin: it must not run scripts there.
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
        }
        if info.content_disposition:
            headers["Content-Disposition"] = info.content_disposition
        return web.FileResponse(storage.path_of(key), headers=headers)

    async def metrics(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        """Prometheus text, for scrapers on an allowed network (`metrics.allow`)."""
        if not scraper_allowed(request, self.metrics_allowed):
            return error_response(Forbidden("metrics are not served to this address"), trace_id)
        try:
            depths = await jobs_by_state(self.runtime)
        except Exception as exc:  # the process's own series are still worth serving
            log.warning("metrics: cannot count jobs: %s", exc)
            depths = {}
        body = metrics.exposition(depths)
        return web.Response(
            body=body, headers={"Content-Type": metrics.CONTENT_TYPE, TRACE_HEADER: trace_id}
        )

    async def healthz(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        return json_response({"status": "ok"}, 200, trace_id)

    async def readyz(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        if await self.runtime.database.ready():
            return json_response({"status": "ready"}, 200, trace_id)
        return json_response({"status": "database unavailable"}, 503, trace_id)


# Headers only a proxy adds; X-Forwarded-For is checked hop by hop instead.
_PROXY_MARKERS = ("Forwarded", "X-Real-IP", "Via", "X-Forwarded-Host", "X-Forwarded-Proto")


def scraper_allowed(request: web.BaseRequest, allowed: Sequence[Network]) -> bool:
    """Whether the socket peer is allowed and so is every client a proxy names.

    Forwarding headers can only take access away: a request relayed by a proxy
    on this host comes from loopback, but it is the outside client that asked.
    A proxy that adds none of these headers cannot be told apart (docs/metrics.md).
    """
    if not in_networks(request.remote, allowed):
        return False
    headers = request.headers
    if any(marker in headers for marker in _PROXY_MARKERS):
        return False  # relayed, and the client is not named in a form checked here
    return all(in_networks(hop, allowed) for hop in hops(forwarded_for(headers) or ""))


async def jobs_by_state(runtime: Runtime) -> dict[str, float]:
    database = runtime.database
    async with database.detached() as conn:
        return {k: float(v) for k, v in (await queue_store.count_by_state(conn)).items()}


def needs_client_ip(registry: Registry) -> frozenset[str]:
    """The actions that look at the client's address (rate limits); the others skip it."""
    return _with_guard(registry, {"rate_limit"})


def needs_identity(registry: Registry) -> frozenset[str]:
    """The actions whose guards refuse anonymous callers whatever else they check."""
    return _with_guard(
        registry, {"authenticated", "has_permission", "has_role", "in_org", "has_feature"}
    )


def _with_guard(registry: Registry, names: set[str]) -> frozenset[str]:
    return frozenset(
        name
        for name, action in registry.actions.items()
        if any(guard.name in names for guard in action.guards)
    )


def json_response(data: Any, status: int, trace_id: str) -> web.Response:
    headers = {"Content-Type": _JSON, TRACE_HEADER: trace_id}
    return web.Response(body=dumps(data), status=status, headers=headers)


def error_response(error: ActionError, trace_id: str) -> web.Response:
    headers = {"Content-Type": _JSON, TRACE_HEADER: trace_id, **error.headers}
    return web.Response(body=error_json(error, trace_id), status=error.status, headers=headers)


def failure_response(exc: Exception, trace_id: str, what: str) -> web.Response:
    """The answer to an exception nothing answered: aiohttp's own refusals keep
    their 4xx status; anything else is a 500, its traceback logged once as `what`."""
    if isinstance(exc, ActionError):
        return error_response(exc, trace_id)
    if isinstance(exc, web.HTTPClientError):
        return error_response(from_aiohttp(exc), trace_id)
    log.error(what, exc_info=exc, extra={"trace_id": trace_id})
    return error_response(InternalError(), trace_id)


def create_server(runtime: Runtime, **kwargs: Any) -> tuple[web.Server, HttpFront]:
    """The aiohttp server for `runtime` and the front that answers it.

    `kwargs` go to aiohttp's request handler (access_log, keepalive_timeout, ...).
    """
    front = HttpFront(runtime)
    kwargs.setdefault("access_log_class", AccessLogger)  # never logs a ?token=
    config = runtime.config.server
    limits = ConnectionLimits(
        header_timeout_seconds=config.header_timeout_seconds,
        max_connections=config.max_connections,
    )
    return ConnectionServer(front.handle, limits=limits, **kwargs), front
