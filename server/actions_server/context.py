"""`ctx`, the second argument of every handler, and its small facades.

A Context is built per run and is cheap: `db` is a session that opens no
connection until used, and `logger` is made on first access.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import redaction
from .auth import AuthContext
from .db.session import DbSession
from .kv import KV
from .mail.message import Mail
from .queue.facades import EventBuffer, Events, Queue
from .realtime.facade import Channel, ChannelBuffer, channel
from .redaction import Redactor
from .registry import Registry
from .request import HttpRequest
from .response import Cookie
from .runs.lines import LogEntry
from .scope import RunInfo
from .services import Services
from .storage import Storage

if TYPE_CHECKING:
    from .runs.recorder import RunRecorder

_action_log = logging.getLogger("actions_server.action")


class RunLogger:
    """`ctx.logger`: structured log lines tagged with the action and trace id.

    Each line goes to the process log and is stored with its run; fields under
    sensitive keys (`runs.redact_keys`) are redacted for both.
    """

    __slots__ = ("_extra", "_recorder", "_redactor", "_run_id", "stored")

    def __init__(
        self,
        run: RunInfo,
        recorder: RunRecorder | None = None,
        redactor: Redactor = redaction.DEFAULT,
    ) -> None:
        self._run_id = run.id
        self.stored = False  # a line went to the recorder
        self._recorder = recorder
        self._redactor = redactor
        self._extra = {
            "action": run.action,
            "trace_id": run.trace_id,
            "run_id": run.id,
            "job_id": run.job_id,
            "attempt": run.attempt if run.job_id else None,
        }

    def _log(
        self, level: int, message: str, fields: dict[str, Any], exc_info: bool = False
    ) -> None:
        recorder = self._recorder
        printed = _action_log.isEnabledFor(level)
        stored = recorder is not None and level >= recorder.min_level
        if fields and (printed or stored):
            fields = self._redactor.redact(fields)
        if printed:
            _action_log.log(
                level, message, extra={**self._extra, "fields": fields}, exc_info=exc_info
            )
        if stored and recorder is not None:
            self.stored = True
            recorder.add_log(
                LogEntry(
                    self._run_id,
                    time.time(),
                    logging.getLevelName(level).lower(),
                    str(message),
                    fields,
                )
            )

    def debug(self, message: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, fields)

    warn = warning

    def error(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, fields)

    def exception(self, message: str, **fields: Any) -> None:
        """An error line with the exception being handled."""
        self._log(logging.ERROR, message, fields, exc_info=True)


class Context:
    """What a handler can reach: db, auth, kv, storage, queue, event, channel, logger, run."""

    __slots__ = (
        "_channels",
        "_events",
        "_kv",
        "_logger",
        "_queue",
        "_recorder",
        "_redactor",
        "_registry",
        "_request",
        "_services",
        "auth",
        "db",
        "response_cookies",
        "run",
    )

    def __init__(
        self,
        *,
        db: DbSession,
        run: RunInfo,
        auth: AuthContext,
        registry: Registry,
        services: Services,
        recorder: RunRecorder | None = None,
        redactor: Redactor = redaction.DEFAULT,
        request: Callable[[], HttpRequest] | HttpRequest | None = None,
    ) -> None:
        self.db = db
        self.run = run
        self.auth = auth
        self._registry = registry
        self._services = services
        self._recorder = recorder
        self._redactor = redactor
        self._logger: RunLogger | None = None
        self._queue: Queue | None = None
        self._events: EventBuffer | None = None
        self._channels: ChannelBuffer | None = None
        self._kv: KV | None = None
        self._request = request  # a factory until first read: most runs never look
        # Cookies set through ctx.auth.login/logout, sent with an HTTP response.
        self.response_cookies: list[Cookie] = []
        auth.bind(db, self.response_cookies)
        db.on_savepoint(self._mark_events)

    @property
    def logged(self) -> bool:
        """Whether the run stored a log line (its run record is then always kept)."""
        return self._logger is not None and self._logger.stored

    @property
    def request(self) -> HttpRequest | None:
        """The HTTP request of an api or webhook run; None on other triggers."""
        request = self._request
        if request is not None and not isinstance(request, HttpRequest):
            request = self._request = request()
        return request

    @property
    def storage(self) -> Storage:
        return self._services.storage

    @property
    def mail(self) -> Mail:
        return Mail(self, self._services.mailer)

    @property
    def kv(self) -> KV:
        if self._kv is None:
            self._kv = self._services.kv_for(self.db)
        return self._kv

    @property
    def logger(self) -> RunLogger:
        if self._logger is None:
            self._logger = RunLogger(self.run, self._recorder, self._redactor)
        return self._logger

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            self._queue = Queue(self, self._registry)
        return self._queue

    @property
    def event(self) -> Events:
        if self._events is None:
            self._events = EventBuffer()
        return Events(self._events)

    def channel(self, name: str) -> Channel:
        """`ctx.channel("org:acme:projects").publish(event, payload)`: sent once the run commits."""
        if self._channels is None:
            self._channels = ChannelBuffer()
        return channel(name, self._registry, self._channels, self._services.channel_payload_bytes)

    def _mark_events(self) -> Callable[[], None]:
        """Undoes the events emitted and messages published inside a savepoint that rolls back."""
        if self._events is None:
            self._events = EventBuffer()
        if self._channels is None:
            self._channels = ChannelBuffer()
        rewind_events, rewind_channels = self._events.mark(), self._channels.mark()

        def rewind() -> None:
            rewind_events()
            rewind_channels()

        return rewind

    @property
    def has_pending(self) -> bool:
        """Whether events or channel messages wait to be written before the commit."""
        return bool(self._events or self._channels)

    async def flush_events(self) -> None:
        """Write the events emitted and channel messages published so far, in the run's
        transaction (before it commits)."""
        if self._events:
            await self._events.flush(self, self._registry)
        if self._channels:
            await self._channels.flush(self)

    def __repr__(self) -> str:
        return f"<Context action={self.run.action!r} run={self.run.id}>"
