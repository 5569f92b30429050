"""Run records as lines of COPY's text format, and the values stored in them.

Each record is one line (tab-separated, `\\N` for NULL) built with one f-string:
psycopg's `write_row` cost several µs a row in Python, which a busy server would
pay for every request it records. Values that can hold anything go through
`_field`; ids, names and numbers the framework made cannot hold a tab, a newline
or a backslash. A value is stored redacted, NUL-free, and as a note when it is
too large; `*_note` lines stand in for a record the database refused.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ..jsonutil import dumps, storable_text
from ..redaction import Redactor, rebuild

if TYPE_CHECKING:
    from ..scope import RunInfo

RUN_COLUMNS = (
    "id", "action", "trigger", "status", "input", "output", "error", "started_at",
    "duration_ms", "attempt", "trace_id", "parent_id", "job_id", "user_id", "org_id",
)  # fmt: skip
LOG_COLUMNS = ("run_id", "at", "level", "message", "fields")
COPY_RUNS = f"COPY actions_server.runs ({', '.join(RUN_COLUMNS)}) FROM STDIN"
COPY_LOGS = f"COPY actions_server.run_logs ({', '.join(LOG_COLUMNS)}) FROM STDIN"
# COPY's text format: tab-separated, one row per line, \N for NULL, and these escaped.
NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


class RunEntry(NamedTuple):
    run: RunInfo
    user_id: str | None
    org_id: str | None
    input: Any  # given: any JSON value; buffered: its JSON (bytes), or None
    output: bytes | None  # on success, the output's JSON as the response carried it
    error: dict[str, Any] | None
    ended: float  # time.time()
    duration: float  # seconds


class LogEntry(NamedTuple):
    run_id: str
    at: float
    level: str
    message: str
    fields: Any  # given: a dict; buffered: its JSON (bytes)


ENTRY_OVERHEAD = 256  # bytes a buffered entry costs beside its JSON, roughly


def encode(value: Any) -> bytes | None:
    """`value` as JSON bytes, now; a note saying why when it cannot be encoded."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        return dumps(value)
    except TypeError:
        pass
    try:  # a lone surrogate in a string, or nesting beyond what orjson writes
        return dumps(rebuild(value, fix_text=True))
    except TypeError as exc:
        return dumps({"unrecordable": f"{type(value).__name__}: {str(exc)[:200]}"})


def run_size(entry: RunEntry) -> int:
    return len(entry.input or b"") + len(entry.output or b"") + ENTRY_OVERHEAD


def log_size(entry: LogEntry) -> int:
    return len(entry.message) + len(entry.fields) + ENTRY_OVERHEAD


class LineWriter:
    """Makes the COPY lines of runs and log lines (redacting, capping values)."""

    def __init__(self, redactor: Redactor, max_value_bytes: int) -> None:
        self.redactor = redactor
        self.max_value_bytes = max_value_bytes
        self._second = -1
        self._second_text = ""

    # Each row is one line of COPY's text format (tab-separated, \N for NULL), built
    # with one f-string: psycopg's write_row costs several µs a row in Python, which
    # a busy server would pay for every request it records. Values that can hold
    # anything go through _field; ids, names and numbers the framework made cannot
    # hold a tab, a newline or a backslash.

    def run_line(self, entry: RunEntry, note: str | None = None) -> str:
        run, error = entry.run, entry.error
        status = "ok" if error is None else "rejected" if error["status"] < 500 else "error"
        input_json: str | None
        output: str | None
        error_json: str | None
        if note is not None:  # the record itself could not be stored: say so instead
            input_json, output, error_json = _note(note), None, None
            if error is not None:
                kept = {"code": error["code"], "status": error["status"], "message": "(see input)"}
                error_json = dumps(kept).decode()
        elif error is None:
            input_json, output, error_json = self._json(entry.input), self._json(entry.output), None
        else:
            input_json, output, error_json = (
                self._json(entry.input),
                None,
                self._json(encode(error)),
            )
        started = self.timestamp(entry.ended - entry.duration)
        return (
            f"{run.id}\t{run.action}\t{run.trigger}\t{status}\t{_field(input_json)}"
            f"\t{_field(output)}\t{_field(error_json)}\t{started}\t{entry.duration * 1000}"
            f"\t{run.attempt}\t{_text(run.trace_id)}\t{run.parent_id or NULL}"
            f"\t{run.job_id or NULL}\t{_text(entry.user_id)}\t{_text(entry.org_id)}\n"
        )

    def run_note(self, entry: RunEntry, reason: str) -> str:
        return self.run_line(entry, note=reason)

    def log_line(self, entry: LogEntry, note: str | None = None) -> str:
        at = self.timestamp(entry.at)
        fields: str | None
        if note is not None:
            message, fields = "(a log line that could not be stored)", _note(note)
        else:
            message, fields = storable_text(entry.message), self._json(entry.fields)
        return f"{entry.run_id}\t{at}\t{entry.level}\t{_field(message)}\t{_field(fields or '{}')}\n"

    def log_note(self, entry: LogEntry, reason: str) -> str:
        return self.log_line(entry, note=reason)

    def timestamp(self, seconds: float) -> str:
        """`seconds` since the epoch as timestamptz text; the date part is reused while
        runs keep falling in the same second, as under load they do."""
        whole = int(seconds)
        if whole != self._second:
            self._second = whole
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
        return f"{self._second_text}.{int((seconds - whole) * 1_000_000):06d}+00"

    def _json(self, value: bytes | None) -> str | None:
        """Encoded JSON as stored: redacted, NUL-free, or a note when too large."""
        if value is None or value == b"null":
            return None
        if len(value) > self.max_value_bytes:
            return _note(
                f"not stored: {len(value)} bytes, over runs.max_value_bytes "
                f"({self.max_value_bytes})",
                size=len(value),
            )
        text = value.decode()
        if self.redactor.could_hold_secrets(text):
            text = dumps(self.redactor.redact(orjson.loads(value))).decode()
        return _storable_json(text)


def _note(reason: str, **more: Any) -> str:
    """What is stored in place of a value that could not be: valid JSON saying why."""
    return dumps({"unrecordable": reason, **more}).decode()


def _field(text: str | None) -> str:
    """A value for COPY's text format: NULL, or the text with its specials escaped."""
    if text is None:
        return NULL
    if "\\" in text or "\n" in text or "\t" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _text(text: str | None) -> str:
    """A caller-supplied text (a token's subject, an org id, a trace id) for COPY:
    PostgreSQL's text cannot hold NUL, which would fail the whole batch."""
    return _field(None if text is None else storable_text(text))


def _storable_json(text: str) -> str:
    """JSON that jsonb accepts: it refuses the NUL character, even escaped."""
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text
