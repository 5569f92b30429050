"""The run recorder: a bounded buffer, flushed in batches by a background task.

The request path only appends a tuple: redaction, JSON encoding and the COPY
into `actions_server.runs` / `run_logs` happen in the flusher, every
`runs.flush_interval_seconds` or as soon as a batch is full, on a connection of
its own (a slow flush must not hold a connection the runs or the worker need).
When the database is slow or down the buffer keeps at most `runs.buffer_size`
entries and drops the oldest, counting them: recording never blocks a request
and never grows without bound. On shutdown what is left is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
import psycopg

from .. import metrics
from ..config import RunsConfig
from ..errors import ActionError
from ..jsonutil import dumps
from ..redaction import Redactor

if TYPE_CHECKING:
    from ..context import RunInfo

log = logging.getLogger("actions_server.runs")

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
T = TypeVar("T")
SLICE = 50  # entries encoded between two turns of the event loop
SLICE_CHARS = 256 * 1024  # ...or this much text, whichever comes first
CLOSE_TIMEOUT_SECONDS = 5.0
MAX_TRACEBACK = 8000


class RunEntry(NamedTuple):
    run: RunInfo
    user_id: str | None
    org_id: str | None
    input: Any
    output: Any  # on success, the output's JSON as the response carried it (bytes)
    error: dict[str, Any] | None
    ended: float  # time.time()
    duration: float  # seconds


class LogEntry(NamedTuple):
    run_id: str
    at: float
    level: str
    message: str
    fields: dict[str, Any]


def error_record(error: ActionError, cause: BaseException | None) -> dict[str, Any]:
    """What is kept of a failed run: code, message, status, and a 500's traceback."""
    record: dict[str, Any] = {"code": error.code, "message": error.message, "status": error.status}
    if error.status >= 500 and cause is not None and cause is not error:
        record["traceback"] = "".join(traceback.format_exception(cause))[-MAX_TRACEBACK:]
    return record


class RunRecorder:
    def __init__(
        self, dsn: str, config: RunsConfig, redactor: Redactor, *, min_level: int = logging.INFO
    ) -> None:
        self.dsn = dsn
        self.min_level = min_level  # handler log lines below this are not stored
        self.config = config
        self.redactor = redactor
        self.runs: deque[RunEntry] = deque()
        self.logs: deque[LogEntry] = deque()
        self.dropped_runs = 0
        self.dropped_logs = 0
        self._wake = asyncio.Event()  # a batch is full
        self._stop = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._second = -1
        self._second_text = ""

    # --- the request path: append and return ---------------------------------------

    def add_run(self, entry: RunEntry) -> None:
        if len(self.runs) >= self.config.buffer_size:
            self.runs.popleft()
            self._dropped("runs", 1)
        self.runs.append(entry)
        if len(self.runs) >= self.config.batch_size:
            self._wake.set()

    def add_log(self, entry: LogEntry) -> None:
        if len(self.logs) >= self.config.buffer_size:
            self.logs.popleft()
            self._dropped("logs", 1)
        self.logs.append(entry)
        if len(self.logs) >= self.config.batch_size:
            self._wake.set()

    # --- the flusher ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="run-recorder")

    async def close(self) -> None:
        """Stop the flusher, letting a batch it is writing finish, then write what is
        left (giving up after a few seconds)."""
        self._stop.set()
        self._wake.set()
        task, self._task = self._task, None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                if task is not None:
                    # Shielded: at the deadline the task is cancelled below, with a
                    # bounded wait, rather than awaited through psycopg's own
                    # cancel handshake.
                    await asyncio.shield(task)
                while self.runs or self.logs:
                    if not await self.flush():
                        break
        except TimeoutError:
            pass
        except Exception:
            log.exception("the run recorder failed while closing")
        if task is not None and not task.done():
            task.cancel()  # its batch goes back to the buffer, counted below
            await asyncio.wait({task}, timeout=1.0)
        if self.runs or self.logs:
            log.warning("%d runs and %d log lines not recorded", len(self.runs), len(self.logs))
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        interval = self.config.flush_interval_seconds
        pause = interval
        while not self._stop.is_set():
            if not self._full_batch_waiting():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return  # close() writes what is left
            try:
                flushed = await self.flush()
            except Exception:  # a bug: keep recording what comes next
                log.exception("the run recorder failed; carrying on")
                flushed = True
            if flushed:
                pause = interval
            else:  # the database is struggling: back off (close() cuts this short)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stop.wait()
                pause = min(pause * 2, 5.0)

    def _full_batch_waiting(self) -> bool:
        size = self.config.batch_size
        return len(self.runs) >= size or len(self.logs) >= size

    async def flush(self) -> bool:
        """Write up to one batch of runs and of log lines; False when it was not written."""
        size = self.config.batch_size
        runs = [self.runs.popleft() for _ in range(min(size, len(self.runs)))]
        logs = [self.logs.popleft() for _ in range(min(size, len(self.logs)))]
        if not runs and not logs:
            return True
        try:
            conn = await self._connection()
            async with conn.transaction():
                cursor = conn.cursor()
                if runs:
                    async with cursor.copy(COPY_RUNS) as copy:
                        await _write_in_slices(copy, runs, self._run_line)
                if logs:
                    async with cursor.copy(COPY_LOGS) as copy:
                        await _write_in_slices(copy, logs, self._log_line)
        except asyncio.CancelledError:  # the transaction rolled back: nothing was written
            self._put_back(runs, logs)
            raise
        except (psycopg.OperationalError, OSError) as exc:
            log.warning("cannot record %d runs now: %s", len(runs), exc)
            await self._drop_connection()
            self._put_back(runs, logs)
            return False
        except Exception:
            # Not an outage: this batch cannot be written (a bug, a missing table or
            # privilege). Count it, do not retry it forever, and back off as for an
            # outage in case the next batch meets the same problem.
            log.exception(
                "dropped %d runs and %d log lines that could not be stored", len(runs), len(logs)
            )
            self._dropped("runs", len(runs))
            self._dropped("logs", len(logs))
            await self._drop_connection()
            return False
        return True

    def _put_back(self, runs: list[RunEntry], logs: list[LogEntry]) -> None:
        limit = self.config.buffer_size
        self._dropped("runs", _return_to_front(self.runs, runs, limit))
        self._dropped("logs", _return_to_front(self.logs, logs, limit))

    def _dropped(self, kind: str, count: int) -> None:
        if count:
            if kind == "runs":
                self.dropped_runs += count
            else:
                self.dropped_logs += count
            metrics.count_dropped(kind, count)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=5
            )
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    # --- rows -------------------------------------------------------------------------

    # Each row is one line of COPY's text format (tab-separated, \N for NULL), built
    # with one f-string: psycopg's write_row costs several µs a row in Python, which
    # a busy server would pay for every request it records. Values that can hold
    # anything go through _field; ids, names and numbers the framework made cannot
    # hold a tab, a newline or a backslash.

    def _run_line(self, entry: RunEntry) -> str:
        run, error = entry.run, entry.error
        if error is None:
            status, output, error_json = "ok", self._json(entry.output), None
        else:
            status = "rejected" if error["status"] < 500 else "error"
            output, error_json = None, self._json(error)
        started = self._timestamp(entry.ended - entry.duration)
        return (
            f"{run.id}\t{run.action}\t{run.trigger}\t{status}\t{_field(self._json(entry.input))}"
            f"\t{_field(output)}\t{_field(error_json)}\t{started}\t{entry.duration * 1000}"
            f"\t{run.attempt}\t{_field(run.trace_id)}\t{run.parent_id or NULL}"
            f"\t{run.job_id or NULL}\t{_field(entry.user_id)}\t{_field(entry.org_id)}\n"
        )

    def _log_line(self, entry: LogEntry) -> str:
        at = self._timestamp(entry.at)
        message = _field(entry.message.replace("\x00", ""))
        return (
            f"{entry.run_id}\t{at}\t{entry.level}\t{message}"
            f"\t{_field(self._json(entry.fields) or '{}')}\n"
        )

    def _timestamp(self, seconds: float) -> str:
        """`seconds` since the epoch as timestamptz text; the date part is reused while
        runs keep falling in the same second, as under load they do."""
        whole = int(seconds)
        if whole != self._second:
            self._second = whole
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
        return f"{self._second_text}.{int((seconds - whole) * 1_000_000):06d}+00"

    def _json(self, value: Any) -> str | None:
        if value is None or value == b"null":
            return None
        try:
            text = value.decode() if isinstance(value, bytes) else dumps(value).decode()
        except TypeError:
            pass
        else:
            if not self.redactor.could_hold_secrets(text):
                return _storable_json(text)
            if isinstance(value, bytes):
                value = orjson.loads(value)
        redacted = self.redactor.redact(value)
        try:
            text = dumps(redacted).decode()
        except TypeError:  # a lone surrogate in some string, or a value JSON cannot hold
            try:
                text = dumps(_valid_unicode(redacted)).decode()
            except TypeError:
                text = dumps({"unrecordable": type(value).__name__}).decode()
        return _storable_json(text)


async def _write_in_slices(copy: Any, entries: list[T], line: Callable[[T], str]) -> None:
    """Encode and send `entries` a slice at a time, letting requests run in between:
    a whole batch at once held the event loop for milliseconds (a p99 spike). A
    slice ends after SLICE entries or SLICE_CHARS of text, whichever comes first,
    so that runs with large inputs do not hold the loop either."""
    chunk: list[str] = []
    size = 0
    for entry in entries:
        text = line(entry)
        chunk.append(text)
        size += len(text)
        if len(chunk) >= SLICE or size >= SLICE_CHARS:
            await copy.write("".join(chunk).encode())
            await asyncio.sleep(0)
            chunk, size = [], 0
    if chunk:
        await copy.write("".join(chunk).encode())


def _return_to_front(buffer: deque[T], batch: list[T], limit: int) -> int:
    """Put a failed batch back before newer entries, within `limit`; how many were dropped.

    The oldest go first, as when the buffer overflows.
    """
    room = max(0, limit - len(buffer))
    kept = batch[-room:] if room else []
    buffer.extendleft(reversed(kept))
    return len(batch) - len(kept)


def _field(text: str | None) -> str:
    """A value for COPY's text format: NULL, or the text with its specials escaped."""
    if text is None:
        return NULL
    if "\\" in text or "\n" in text or "\t" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _valid_unicode(value: Any) -> Any:
    """`value` with every string made valid UTF-8 (lone surrogates become '?')."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_unicode(v) for v in value]
    return value


def _storable_json(text: str) -> str:
    """JSON that jsonb accepts: it refuses the NUL character, even escaped."""
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text
