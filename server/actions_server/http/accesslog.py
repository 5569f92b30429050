"""The access log, without credentials: a browser's WebSocket carries its token
in `?token=` (it cannot set headers), and the request line is logged."""

from __future__ import annotations

from aiohttp import web, web_log

REDACTED = "[redacted]"


class AccessLogger(web_log.AccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if "token=" in request.query_string:
            request = request.clone(rel_url=request.rel_url.update_query(token=REDACTED))
        super().log(request, response, time)
