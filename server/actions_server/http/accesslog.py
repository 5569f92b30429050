"""The access logs, without credentials: a browser's WebSocket carries its token
in `?token=` (it cannot set headers), and the request line is logged.

`AccessLogger` is aiohttp's Apache-style line (`server.access_log: true`).
`dev_access_logger` is the development line (`actions-server dev`): method,
path, status, duration, trace id and action, through our own log formatter so
that it reads like every other line:

    12:00:01 INFO    users.list  GET /users 200 3.1 ms  trace_id=…
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web, web_log
from aiohttp.abc import AbstractAccessLogger

from .responses import TRACE_HEADER

REDACTED = "[redacted]"


class AccessLogger(web_log.AccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if "token=" in request.query_string:
            request = request.clone(rel_url=request.rel_url.update_query(token=REDACTED))
        super().log(request, response, time)


def dev_access_logger(
    action_of: Callable[[str, str], str | None],
) -> type[AbstractAccessLogger]:
    """An access logger class for aiohttp that names each request's action.

    `action_of(method, path)` names the action a request went to (None for a
    built-in endpoint or no route); it is asked only after the answer is sent.
    """

    class DevAccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            path = request.rel_url.path
            try:
                action = action_of(request.method, path)
            except Exception:  # a log line must never fail a request
                action = None
            level = logging.WARNING if response.status >= 500 else logging.INFO
            self.logger.log(
                level,
                "%s %s %d %.0f ms",
                request.method,
                path,
                response.status,
                time * 1000,
                extra={"action": action, "trace_id": response.headers.get(TRACE_HEADER)},
            )

    return DevAccessLogger
