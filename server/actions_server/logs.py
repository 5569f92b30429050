"""Structured logs: stable keys, printed pretty for people or as JSON lines.

Every record may carry `action`, `trace_id`, `run_id`, `job_id`, `attempt` and
free `fields`; the formatters print them the same way whoever logged them
(the framework or a handler through `ctx.logger`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from .jsonutil import dumps

CONTEXT_KEYS = ("action", "trace_id", "run_id", "job_id", "attempt")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_COLOURS = {
    "DEBUG": "\033[2m",
    "INFO": "\033[36m",
    "WARNING": "\033[33m",
    "ERROR": "\033[31m",
    "CRITICAL": "\033[31m",
}
_RESET = "\033[0m"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured keys of a record: context keys first, then its fields."""
    out: dict[str, Any] = {}
    for key in CONTEXT_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            out[key] = value
    fields = getattr(record, "fields", None)
    if fields:
        out.update(fields)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context keys, the
    free fields under `fields` (so that a field named `level` cannot hide the level),
    and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        fields = getattr(record, "fields", None)
        if fields:
            entry["fields"] = fields
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps(entry).decode()


class PrettyFormatter(logging.Formatter):
    """`12:00:01 INFO  users.create  created user  user_id=… trace_id=…`, coloured on a TTY."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname:<7}"
        if self.colour:
            level = f"{_COLOURS.get(record.levelname, '')}{level}{_RESET}"
        fields = record_fields(record)
        action = fields.pop("action", None)
        head = f"{stamp} {level} {action or record.name}"
        tail = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
        line = f"{head}  {record.getMessage()}" + (f"  {tail}" if tail else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else dumps(value).decode()
    return text if len(text) <= 200 else text[:197] + "..."


def configure_logging(
    level: str = "info", fmt: str = "pretty", stream: TextIO | None = None
) -> None:
    """Send every actions-server (and handler) log line to `stream` in `fmt`.

    `serve` and `worker` log to stdout, where process managers and container
    runtimes collect it; one-shot commands (`call`, `openapi`, `jobs list`...)
    log to stderr (the default), keeping their stdout for their output.
    """
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PrettyFormatter(colour=stream.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # Per-connection chatter from the pool is noise at info level.
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    # APScheduler narrates every job it adds and runs; our own lines say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # pgserver logs every pg_ctl command line it runs, with its whole output.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
