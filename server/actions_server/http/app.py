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
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .. import metrics
from ..auth import AuthContext
from ..dashboard.views import Dashboard
from ..errors import ActionError, BadRequest, Forbidden, MethodNotAllowed, NotFound
from ..guards import Caller, identity_denial
from ..ids import new_trace_id
from ..mcp.endpoint import McpEndpoint
from ..mcp.settings import McpSettings
from ..queue import store as queue_store
from ..realtime.hub import Realtime
from ..receipts import ReceiptKey, fingerprint
from ..registry import Registry, Route
from ..request import HttpRequest
from ..runtime import Runtime
from ..storage import check_key
from ..storage.signing import ROUTE as STORAGE_ROUTE
from ..storage.signing import verify
from .accesslog import AccessLogger, dev_access_logger
from .caller import (
    caller_of,
    client_ip,
    forwarded_for,
    parse_networks,
    scraper_allowed,
)
from .connections import ConnectionLimits, ConnectionServer
from .cors import CorsPolicy
from .csrf import UNSAFE, csrf_denial
from .inputs import BodyLimits, read_input
from .reference import ApiReference
from .responses import TRACE_HEADER, answer, error_response, failure_response, json_response, stream
from .routes import Router, normalize_path
from .uploads import close_files
from .webhooks import handle_webhook

log = logging.getLogger("actions_server.http")

# A caller's trace id is kept when it is plain enough to put in logs and headers.
_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}\Z")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
# request[...]: the headers every answer to the request carries (CORS)
_CORS_HEADERS = web.RequestKey("actions_server.cors", dict[str, str])

Endpoint = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]


class HttpFront:
    """Turns requests into executor runs; holds the current route table."""

    def __init__(self, runtime: Runtime, *, dev: bool = False) -> None:
        self.runtime = runtime
        self.dev = dev  # `actions-server dev`: GET / leads to /docs, open dashboard on loopback
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
        mcp = McpSettings.from_config(runtime.config)
        self.mcp = McpEndpoint(runtime, mcp) if mcp.enabled else None
        self.mcp_handle: Endpoint | None = None  # the one built-in that takes POST
        if self.mcp is not None:  # /mcp, and its OAuth metadata
            self.builtins.update(self.mcp.paths)
            self.mcp_handle = self.mcp.handle
        if runtime.config.metrics.enabled:
            self.builtins["/metrics"] = self.metrics
        self.metrics_allowed = parse_networks(runtime.config.metrics.allow)
        self.dashboard = (
            Dashboard(runtime, open_on_loopback=dev) if runtime.config.dashboard.enabled else None
        )
        self.special_prefixes = (STORAGE_ROUTE,) + (
            (self.dashboard.prefix,) if self.dashboard is not None else ()
        )
        self.verifier = runtime.executor.auth.verifier
        self.local_storage = runtime.executor.services.local_storage
        self.trusted_proxies = parse_networks(runtime.config.server.trusted_proxies)
        cors = runtime.config.server.cors
        self.cors = CorsPolicy.from_config(cors) if cors is not None else None
        self.session_cookie = runtime.config.auth.session.cookie
        self.idempotency_ttl = runtime.config.server.idempotency_ttl_seconds
        self.webhook_receipt_ttl = runtime.config.server.webhook_receipt_ttl_seconds
        # SIGTERM with server.drain_seconds: /readyz says 503 and every answer closes
        # its connection, so a load balancer moves away before the server stops.
        self.draining = False
        self.realtime: Realtime | None = None
        if runtime.config.realtime.enabled:  # WebSocket channels (docs/realtime.md)
            self.realtime = Realtime(runtime, self.trusted_proxies)
            self.builtins[runtime.config.realtime.path] = self.realtime.upgrade
        self.point_home_at_docs()

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
        if self.mcp is not None:
            self.mcp.use_registry(registry)
        self.runtime.executor.use_registry(registry)
        if self.realtime is not None:
            self.realtime.use_registry(registry)
        self.runtime.registry = registry
        self.router, self.needs_client_ip, self.needs_identity = router, with_ip, identity
        self.point_home_at_docs()

    def point_home_at_docs(self) -> None:
        """On a development server, `GET /` sends a browser to `/docs`, unless an action
        serves `/` itself."""
        if self.dev and not self.router.methods("/") and "/docs" in self.builtins:
            self.builtins["/"] = self.home
        else:
            self.builtins.pop("/", None)

    async def home(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        return web.Response(
            status=307,
            headers={"Location": "/docs", TRACE_HEADER: trace_id},
            text="This is a development server: its API is described at /docs\n",
        )

    def action_of(self, method: str, path: str) -> str | None:
        """The action a request went to, for the development access log."""
        try:
            route, _ = self.router.match(method, path)
        except ActionError:
            return None
        return route.action.name

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        incoming = request.headers.get(TRACE_HEADER)
        trace_id = incoming if incoming and _TRACE_ID.match(incoming) else new_trace_id()
        # rel_url, not raw_path: an absolute-form target (GET http://host/x) has a path too.
        path = normalize_path(request.rel_url.raw_path)
        cors = self.cors
        if cors is None:
            response = await self.dispatch(request, path, trace_id, started)
            if self.draining:
                response.force_close()
            return response
        # CORS is outermost: a preflight is answered before routing and guards, and
        # every answer (errors included) carries the headers the origin is allowed.
        origin = request.headers.get("Origin")
        asks = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if origin is not None and asks:
            return self.preflight(request, path, origin, cors, trace_id)
        extra = cors.response_headers(origin)
        vary = cors.vary()
        if vary is not None:
            extra["Vary"] = vary
        request[_CORS_HEADERS] = extra
        response = await self.dispatch(request, path, trace_id, started)
        if not response.prepared:  # a stream was sent with them already
            for name, value in extra.items():
                response.headers.setdefault(name, value)
        if self.draining:
            response.force_close()
        return response

    def preflight(
        self,
        request: web.BaseRequest,
        path: str,
        origin: str,
        cors: CorsPolicy,
        trace_id: str,
    ) -> web.StreamResponse:
        """204 for an allowed origin asking about a path that exists; 404 for a path
        that does not; 403 without CORS headers for an origin or a header not allowed."""
        builtin = self.builtins.get(path)
        if builtin is None:
            methods = self.router.methods(path)
        else:
            methods = {"POST"} if builtin == self.mcp_handle else {"GET", "HEAD"}
        if not methods:
            return error_response(
                NotFound(f"no route for {path}", code="route_not_found"), trace_id
            )
        headers = cors.preflight_headers(
            origin, methods, request.headers.get("Access-Control-Request-Headers")
        )
        if headers is None:
            refused = Forbidden(
                f"CORS does not allow this request from {origin}", code="cors_refused"
            )
            return error_response(refused, trace_id)
        return web.Response(status=204, headers={**headers, TRACE_HEADER: trace_id})

    async def dispatch(
        self, request: web.BaseRequest, path: str, trace_id: str, started: float
    ) -> web.StreamResponse:
        builtin = self.builtins.get(path)
        # One C-level test keeps the common request (an action's route) off both branches.
        special = builtin is None and path.startswith(self.special_prefixes)
        if special and path.startswith(STORAGE_ROUTE) and self.local_storage is not None:
            builtin = self.signed_download
        if special and self.dashboard is not None and self.dashboard.owns(path):
            if request.method not in ("GET", "HEAD", "POST"):
                return error_response(MethodNotAllowed({"GET", "HEAD", "POST"}), trace_id)
            try:
                response = await self.dashboard.handle(request, path)
            except Exception as exc:
                return failure_response(exc, trace_id, "dashboard page failed")
            response.headers[TRACE_HEADER] = trace_id
            return response
        if builtin is not None:
            if request.method not in ("GET", "HEAD") and builtin != self.mcp_handle:
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
            if route.webhook is not None:  # verified before anything else
                return await handle_webhook(
                    request,
                    route,
                    params,
                    trace_id,
                    executor=self.runtime.executor,
                    limits=self.limits,
                    receipt_ttl=self.webhook_receipt_ttl,
                    describe=self.describe,
                )
            with_ip = action.name in self.needs_client_ip
            caller = caller_of(
                request,
                self.verifier,
                self.trusted_proxies,
                with_ip=with_ip,
                session_cookie=self.session_cookie,
            )
            if caller.via_cookie:
                denial = csrf_denial(request.method, request.headers, self.cors)
                if denial is not None:
                    raise denial
            if action.name in self.needs_identity and not caller.principal.is_authenticated:
                # Refuse before reading a body that could be megabytes long.
                auth = AuthContext(self.runtime.executor.auth, caller.principal)
                denial = identity_denial(auth, caller, action.run_as)
                if denial is not None:
                    raise denial
            payload, raw = await read_input(request, action, params, self.limits)
            try:
                result = await self.runtime.executor.run(
                    action,
                    payload,
                    trigger="api",
                    caller=caller,
                    trace_id=trace_id,
                    request=self.describe(request, path, raw),
                    receipt=self.receipt_for(request, route, caller, path, raw)
                    if request.method in UNSAFE
                    else None,
                    status=route.status,
                )
                if result.response is not None and result.response.is_stream:
                    response = await stream(
                        request, result, route.status, trace_id, self.extra(request)
                    )
                else:
                    response = answer(result, route.status, trace_id)
            finally:
                if raw is None and request.body_exists:  # multipart: its temporary files
                    close_files(payload)
        except ActionError as exc:
            response = error_response(exc, trace_id)
        except Exception as exc:
            response = failure_response(exc, trace_id, "request failed outside the executor")
        metrics.observe_request(action_name, response.status, time.perf_counter() - started)
        return response

    @staticmethod
    def extra(request: web.BaseRequest) -> dict[str, str]:
        """Headers every answer to `request` carries (CORS), for a stream sent early."""
        found: dict[str, str] = request.get(_CORS_HEADERS, {})
        return found

    def describe(
        self, request: web.BaseRequest, path: str, raw: bytes | None
    ) -> Callable[[], HttpRequest]:
        """`ctx.request`, made only if the handler looks."""

        def make() -> HttpRequest:
            return HttpRequest(
                method=request.method,
                path=path,
                headers=request.headers,
                query=request.query,
                client=client_ip(
                    request.remote, forwarded_for(request.headers), self.trusted_proxies
                ),
                body=raw,
            )

        return make

    def receipt_for(
        self,
        request: web.BaseRequest,
        route: Route,
        caller: Caller,
        path: str,
        raw: bytes | None,
    ) -> ReceiptKey | None:
        """The receipt an `Idempotency-Key` asks for, on an unsafe method of an action
        that takes them; keys are per action and per caller."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None or request.method not in UNSAFE or not route.action.idempotency:
            return None
        if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
            raise BadRequest(
                f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
                code="invalid_idempotency_key",
            )
        who = caller.principal.user_id or f"ip:{request.remote}"
        return ReceiptKey(
            scope=f"{route.action.name}|{who}",
            key=key,
            fingerprint=fingerprint(request.method, path, raw),
            ttl_seconds=self.idempotency_ttl,
        )

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
        if self.draining:
            return json_response({"status": "draining"}, 503, trace_id)
        if await self.runtime.database.ready():
            return json_response({"status": "ready"}, 200, trace_id)
        return json_response({"status": "database unavailable"}, 503, trace_id)


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


def create_server(
    runtime: Runtime, *, dev: bool = False, **kwargs: Any
) -> tuple[web.Server, HttpFront]:
    """The aiohttp server for `runtime` and the front that answers it.

    `kwargs` go to aiohttp's request handler (access_log, keepalive_timeout, ...).
    `dev`: the development server (`actions-server dev`), with a line per request.
    """
    front = HttpFront(runtime, dev=dev)
    if dev:
        kwargs["access_log"] = logging.getLogger("actions_server.access")
        kwargs["access_log_class"] = dev_access_logger(front.action_of)
    kwargs.setdefault("access_log_class", AccessLogger)  # never logs a ?token=
    config = runtime.config.server
    limits = ConnectionLimits(
        header_timeout_seconds=config.header_timeout_seconds,
        max_connections=config.max_connections,
    )
    return ConnectionServer(front.handle, limits=limits, **kwargs), front
