"""`WholeResponse`: a `web.Response` whose head and body leave in one write.

aiohttp sends a `web.Response` through its general path: `prepare` → `_start` →
`_prepare_headers` → `_write_headers` → the writer's `write_headers`, then
`write_eof` down to the writer's `_send_headers_with_payload`. A dozen coroutine
steps and as many header-dict operations, written for streams, chunking and
compression, most of which a fixed body needs none of. Measured on a bare
`web.Server` answering a small JSON body, that path is ~25 of ~97 µs of CPU per
request (`benchmarks/response_path.py`, `docs/performance.md`).

For the answers most requests get (a body of bytes or none, no cookies, no
compression, no chunking, no `Content-Length` or `Transfer-Encoding` set by hand,
on aiohttp's low-level server), `WholeResponse` adds the headers aiohttp would
add (`Content-Length`, `Date`, `Server`, `Connection`), serialises them with
aiohttp's own serialiser (which refuses control characters, as it does for
aiohttp), writes head and body to the transport at once, and waits for a full
transport to drain, as aiohttp's `write_eof` does. Anything else goes aiohttp's
way, unchanged. `tests/integration/test_whole_response.py` compares the bytes on
the wire with aiohttp's for each case (HTTP/1.0 and 1.1, keep-alive and close,
HEAD, 204, 304, a forced close, multi-valued headers, pipelining), checks that
the whole path was the one taken, and a slow reader's hold.

It copies what aiohttp 3.14 decides about these headers and reads private
attributes of its `StreamResponse`, so on any other aiohttp version every answer
goes aiohttp's way: slower, never different.

A `WholeResponse` is for aiohttp to send (a handler returns it): its `prepare`
sends it whole and returns no writer, so there is nothing to `write` after it.
"""

from __future__ import annotations

from typing import cast

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from aiohttp.http_writer import _serialize_headers

# The aiohttp whose header rules `_send_whole` repeats (tests/integration/
# test_whole_response.py holds it to them).
_KNOWN_AIOHTTP = aiohttp.__version__.split(".")[:2] == ["3", "14"]


class WholeResponse(web.Response):
    """A `web.Response` that is sent whole when nothing about it needs aiohttp's path."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent or self._payload_writer is not None or not self._simple(request):
            return await super().prepare(request)
        sent = self._send_whole(request)
        # As aiohttp's write_eof does: a client that reads slowly holds this
        # request (and the next on its connection) until the transport drains,
        # rather than letting answers pile up in its buffer.
        await request.writer.drain()
        self._body_length = sent  # as aiohttp counts it: the head too, once it is out
        return None

    def _simple(self, request: web.BaseRequest) -> bool:
        # A web.Application's request has on_response_prepare signals to fire.
        if type(request) is not web.BaseRequest or not _KNOWN_AIOHTTP:
            return False
        if self._cookies or self._compression or self._chunked:
            return False
        if self._body is not None and type(self._body) is not bytes:
            return False  # a Payload (file, iterable) is streamed by aiohttp
        # A length or framing set by hand is aiohttp's to reconcile with the body.
        headers = self._headers
        return hdrs.CONTENT_LENGTH not in headers and hdrs.TRANSFER_ENCODING not in headers

    def _send_whole(self, request: web.BaseRequest) -> int:
        """What `Response._start`, `_prepare_headers` and `write_eof` would send, as one write."""
        method, status, version = request.method, self._status, request.version
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        body = cast(bytes, self._body or b"")  # _simple let only bytes through
        empty = self._must_be_empty_body = must_be_empty_body(method, status)
        headers = self._headers
        # 1xx, 204 and 304 have no length; a HEAD (or 304) without a body of its
        # own says nothing of it.
        removed = empty and should_remove_content_length(method, status)
        if not removed and (body or (status != 304 and method != hdrs.METH_HEAD)):
            headers[hdrs.CONTENT_LENGTH] = str(len(body))
        if not empty and body:
            headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
        if hdrs.DATE not in headers:
            headers[hdrs.DATE] = rfc822_formatted_time()
        headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
        if hdrs.CONNECTION not in headers:
            if keep_alive:
                if version == HttpVersion10:
                    headers[hdrs.CONNECTION] = "keep-alive"
            elif version == HttpVersion11:
                headers[hdrs.CONNECTION] = "close"
        status_line = f"HTTP/{version[0]}.{version[1]} {status} {self._reason}"
        data = _serialize_headers(status_line, headers)
        if body and not empty:
            data += body
        transport = request.transport
        if transport is None or transport.is_closing():
            # What aiohttp's writer raises: the request handler takes it as a reset.
            raise ClientConnectionResetError("Cannot write to closing transport")
        transport.write(data)
        self._eof_sent = True  # write_eof has nothing left to do
        # What aiohttp's writer would have counted: its error handling reads it to
        # tell that an answer is already out (and a second one must not follow).
        request.writer.output_size += len(data)
        return len(data)
