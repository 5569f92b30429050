"""The connections under HttpFront: what happens before a request exists.

aiohttp reads and parses each request head before `HttpFront.handle` sees it.
`ConnectionServer` (an aiohttp `web.Server`) and the `ConnectionHandler` it makes
for each connection decide what happens until then:

- a request aiohttp cannot parse is answered 431 (a header line over
  `MAX_HEADER_BYTES`, more than `MAX_HEADERS` headers), 414 (a target over
  `MAX_TARGET_BYTES`) or 400 (anything else malformed), in the one error body
  with `x-trace-id`, never echoing the input, and logged as one warning line;
- a connection whose request head has not wholly arrived within
  `server.header_timeout_seconds` of its opening, or of the first byte of its next
  request on a keep-alive connection, is answered 408 and closed (slowloris). An
  idle keep-alive connection is aiohttp's `keepalive_timeout`'s business;
- at most `server.max_connections` are open at once. At the cap an idle
  keep-alive connection is closed to make room; when none is idle the new
  connection is answered 503 at once and closed.

Normal requests pay for this with one overridden `data_received` call and a few
attribute reads; the timer is armed once per connection, or when a request head
arrives in pieces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web, web_protocol
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.streams import StreamReader

from ..errors import ActionError, InternalError, RequestTimeout
from ..ids import new_trace_id
from .errors import error_json

log = logging.getLogger("actions_server.http")

TRACE_HEADER = "x-trace-id"

# aiohttp raises the same LineTooLong for an overlong target and an overlong
# header line, naming the limit it hit: the two limits differ so that the limit
# tells which it was. (Under AIOHTTP_NO_EXTENSIONS the pure-Python parser checks a
# header line that has not ended yet against the target's limit: a 414 then.)
MAX_TARGET_BYTES = 8192  # the request target, path and query
MAX_HEADER_BYTES = 8190  # one header line, name and value (aiohttp's default)
MAX_HEADERS = 128  # aiohttp's default
_TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message, in both parsers

# aiohttp hands a request it could not parse to the error handler as this stand-in
# message, which says HTTP/1.0; the answer is sent as HTTP/1.1 like every other.
_UNPARSED = web_protocol.ERROR
_UNPARSED_1_1 = _UNPARSED._replace(version=HttpVersion11)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    header_timeout_seconds: float = 15.0
    max_connections: int = 1000
    # A refused connection stays open this long at most, so that the client reads
    # the 503 before the close (closing with its request unread would reset it).
    linger_seconds: float = 2.0


def protocol_error(exc: HttpProcessingError) -> ActionError:
    """What to answer a request aiohttp could not parse; the message never quotes it."""
    if isinstance(exc, LineTooLong):
        if exc.args[1:2] == (MAX_TARGET_BYTES,):
            return ActionError(
                414, "uri_too_long", f"the request target is longer than {MAX_TARGET_BYTES} bytes"
            )
        return ActionError(
            431, "headers_too_large", f"a request header is longer than {MAX_HEADER_BYTES} bytes"
        )
    if exc.message == _TOO_MANY_HEADERS:
        return ActionError(
            431, "headers_too_large", f"the request has more than {MAX_HEADERS} headers"
        )
    return ActionError(400, "malformed_request", _malformed(exc))


def _malformed(exc: HttpProcessingError) -> str:
    if isinstance(exc, BadHttpMethod):
        if "HTTPS" in exc.message:
            return "this port speaks HTTP, not HTTPS"
        return "the request method is not valid"
    if isinstance(exc, BadStatusLine):
        return "the request line is not 'METHOD target HTTP/1.1'"
    if isinstance(exc, InvalidURLError):
        return "the request target is not a valid URL"
    if isinstance(exc, InvalidHeader):
        return "a request header is not valid"
    return "the request is not valid HTTP/1.1"


TOO_MANY_CONNECTIONS = ActionError(
    503,
    "too_many_connections",
    "the server has as many connections open as it takes; try again shortly",
    headers={"Retry-After": "1"},
)


def raw_response(error: ActionError, trace_id: str) -> bytes:
    """A whole HTTP/1.1 response in the one error body, for a connection no request owns."""
    body = error_json(error, trace_id)
    head = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"{TRACE_HEADER}: {trace_id}",
        *(f"{name}: {value}" for name, value in error.headers.items()),
        "Connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class ConnectionServer(web.Server):
    """aiohttp's low-level server, making `ConnectionHandler`s under `limits`."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        limits: ConnectionLimits,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            request_factory=self._request_for,
            max_line_size=MAX_TARGET_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            max_headers=MAX_HEADERS,
            **kwargs,
        )
        self.limits = limits
        self._refusing = False

    def __call__(self) -> ConnectionHandler:
        return ConnectionHandler(self, loop=self._loop, **self._kwargs)

    def admit(self) -> bool:
        """Whether a new connection may open; at the cap, an idle one makes room if there is one."""
        if len(self._connections) < self.limits.max_connections:
            self._refusing = False
            return True
        for handler in self._connections:
            if isinstance(handler, ConnectionHandler) and handler.idle:
                handler.force_close()
                return True
        if not self._refusing:  # once per run of refusals, not once per connection
            self._refusing = True
            log.warning(
                "refusing new connections: %d are open (server.max_connections)",
                len(self._connections),
            )
        return False

    def _request_for(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web_protocol.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        # Every protocol here is made by __call__ above.
        handler: ConnectionHandler = protocol  # type: ignore[assignment]
        timer = handler.header_timer
        if timer is not None:  # the head is in: its deadline is over
            timer.cancel()
            handler.header_timer = None
        if message is _UNPARSED:
            message = _UNPARSED_1_1
        return web.BaseRequest(message, payload, protocol, writer, task, self._loop)


class ConnectionHandler(web_protocol.RequestHandler):
    """One connection: aiohttp's protocol with a deadline on each request head."""

    __slots__ = ("_server", "header_timer")

    def __init__(self, manager: ConnectionServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self.header_timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """Waiting for a next request not a byte of which has come: a keep-alive at rest."""
        waiter = self._waiter
        return (
            self.header_timer is None
            and waiter is not None
            and not waiter.done()
            and not self._messages
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._server.admit():
            self._manager = None  # never counted: connection_lost has nothing to undo
            _Refusal.answer(transport, self._server.limits.linger_seconds)
            return
        super().connection_made(transport)
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        web_protocol.RequestHandler.data_received(self, data)
        if self.header_timer is None:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                # A keep-alive connection got the first bytes of a next request,
                # not its whole head: from now on the head has a deadline.
                self._start_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse, or to an exception that
        escaped `HttpFront.handle` (which answers every exception itself)."""
        trace_id = new_trace_id()
        if isinstance(exc, HttpProcessingError):
            error = protocol_error(exc)
            log.warning(
                "malformed request from %s: %d %s, %s (%s)",
                request.remote,
                error.status,
                error.code,
                error.message,
                type(exc).__name__,
                extra={"trace_id": trace_id},
            )
        else:
            error = InternalError()
            log.error(
                "request failed in the HTTP layer", exc_info=exc, extra={"trace_id": trace_id}
            )
        if (
            request.writer.output_size > 0
        ):  # as aiohttp: half an answer is out, so is the connection
            raise ConnectionError("a response was partly sent before the error")
        headers = {"Content-Type": "application/json", TRACE_HEADER: trace_id, **error.headers}
        response = web.Response(
            body=error_json(error, trace_id), status=error.status, headers=headers
        )
        response.force_close()
        return response

    def _start_header_timer(self) -> None:
        self.header_timer = self._loop.call_later(
            self._server.limits.header_timeout_seconds, self._head_too_slow
        )

    def _head_too_slow(self) -> None:
        self.header_timer = None
        transport = self.transport
        if transport is None or self._messages or self._request_in_progress:
            return  # closed already, or the head made it in the nick of time
        seconds = self._server.limits.header_timeout_seconds
        error = RequestTimeout(f"the request headers did not arrive within {seconds:g}s")
        trace_id = new_trace_id()
        log.warning(
            "closed a connection from %s: %s",
            _host(transport.get_extra_info("peername")),
            error.message,
            extra={"trace_id": trace_id},
        )
        transport.write(raw_response(error, trace_id))
        self.force_close()  # the transport sends what it holds, then closes


class _Refusal(asyncio.Protocol):
    """A connection past the cap: told 503 at once, closed once the client has read it."""

    def __init__(self, transport: asyncio.Transport, linger_seconds: float) -> None:
        self.transport = transport
        self.closer = asyncio.get_running_loop().call_later(linger_seconds, transport.close)

    @classmethod
    def answer(cls, base: asyncio.BaseTransport, linger_seconds: float) -> None:
        transport = cast(asyncio.Transport, base)  # a TCP transport, as aiohttp assumes too
        transport.set_protocol(cls(transport, linger_seconds))
        transport.write(raw_response(TOO_MANY_CONNECTIONS, new_trace_id()))
        if transport.can_write_eof():
            transport.write_eof()  # the client reads the answer, then its end of the stream

    def data_received(self, data: bytes) -> None:
        pass  # the request is not going to be served

    def eof_received(self) -> bool:
        return False  # the client has read and gone: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closer.cancel()


def _host(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)
