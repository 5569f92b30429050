"""The run recorder: a bounded buffer, flushed in batches by a background task.

The request path encodes the run's input (and a log line's fields) to JSON bytes
and appends a tuple: what a handler does to its objects afterwards cannot alter
the record, and the buffer's size is known in bytes. Redaction and the COPY into
`actions_server.runs` / `run_logs` happen in the flusher, every
`runs.flush_interval_seconds` or as soon as a batch is full, on a connection of
its own (a slow flush must not hold a connection the runs or the worker need).
When the database is slow or down the buffer keeps at most `runs.buffer_size`
entries and `runs.buffer_bytes` bytes and drops the oldest, counting them:
recording never blocks a request and never grows without bound. On shutdown
what is left is flushed.

One record never costs another: a value that cannot be encoded is stored as a
note saying so, a value over `runs.max_value_bytes` is stored as a note with its
size, and a batch the database refuses is written again one record at a time,
so that only the record it cannot take is replaced by a note.
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
from ..redaction import Redactor, rebuild

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
GIVE_UP_AFTER = 3  # records in a row that even a note cannot replace


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


def _run_size(entry: RunEntry) -> int:
    return len(entry.input or b"") + len(entry.output or b"") + ENTRY_OVERHEAD


def _log_size(entry: LogEntry) -> int:
    return len(entry.message) + len(entry.fields) + ENTRY_OVERHEAD


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
        self.buffered_bytes = 0  # of both buffers, by _run_size and _log_size
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
        entry = RunEntry(
            entry.run,
            entry.user_id,
            entry.org_id,
            encode(entry.input),
            entry.output,
            entry.error,
            entry.ended,
            entry.duration,
        )
        self.runs.append(entry)
        self.buffered_bytes += _run_size(entry)
        if len(self.runs) > self.config.buffer_size:
            self._drop_oldest_run()
        while self.buffered_bytes > self.config.buffer_bytes and len(self.runs) > 1:
            self._drop_oldest_run()
        if len(self.runs) >= self.config.batch_size:
            self._wake.set()

    def add_log(self, entry: LogEntry) -> None:
        entry = LogEntry(entry.run_id, entry.at, entry.level, entry.message, encode(entry.fields))
        self.logs.append(entry)
        self.buffered_bytes += _log_size(entry)
        if len(self.logs) > self.config.buffer_size:
            self._drop_oldest_log()
        while self.buffered_bytes > self.config.buffer_bytes and len(self.logs) > 1:
            self._drop_oldest_log()
        if len(self.logs) >= self.config.batch_size:
            self._wake.set()

    def _drop_oldest_run(self) -> None:
        self.buffered_bytes -= _run_size(self.runs.popleft())
        self._dropped("runs", 1)

    def _drop_oldest_log(self) -> None:
        self.buffered_bytes -= _log_size(self.logs.popleft())
        self._dropped("logs", 1)

    def _take(self) -> tuple[list[RunEntry], list[LogEntry]]:
        size = self.config.batch_size
        runs = [self.runs.popleft() for _ in range(min(size, len(self.runs)))]
        logs = [self.logs.popleft() for _ in range(min(size, len(self.logs)))]
        self.buffered_bytes -= sum(map(_run_size, runs)) + sum(map(_log_size, logs))
        return runs, logs

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
        runs, logs = self._take()
        if not runs and not logs:
            return True
        try:
            conn = await self._connection()
            async with conn.transaction():
                cursor = conn.cursor()
                if runs:
                    async with cursor.copy(COPY_RUNS) as copy:
                        await _write_in_slices(copy, runs, self._run_line, self._run_note)
                if logs:
                    async with cursor.copy(COPY_LOGS) as copy:
                        await _write_in_slices(copy, logs, self._log_line, self._log_note)
        except asyncio.CancelledError:  # the transaction rolled back: nothing was written
            self._put_back(runs, logs)
            raise
        except (psycopg.OperationalError, OSError) as exc:
            log.warning("cannot record %d runs now: %s", len(runs), exc)
            await self._drop_connection()
            self._put_back(runs, logs)
            return False
        except psycopg.Error as exc:
            # The database refused something in the batch (a value it cannot
            # take): write the records one at a time, so that only that one is
            # replaced by a note and its neighbours are stored.
            log.warning(
                "a batch of %d runs was refused (%s); writing them one by one", len(runs), exc
            )
            return await self._flush_each(runs, logs)
        except Exception:
            # A bug here: this batch cannot be written. Count it rather than retry
            # it forever, and back off as for an outage.
            log.exception(
                "dropped %d runs and %d log lines that could not be stored", len(runs), len(logs)
            )
            self._dropped("runs", len(runs))
            self._dropped("logs", len(logs))
            await self._drop_connection()
            return False
        return True

    async def _flush_each(self, runs: list[RunEntry], logs: list[LogEntry]) -> bool:
        """Write each record on its own (a savepoint each); a record the database
        refuses is stored as a note. If even a note is refused the problem is not
        the records (no table, no privilege): the rest are dropped and counted."""
        pending_runs, pending_logs = list(runs), list(logs)
        lost = {"runs": 0, "logs": 0}
        failures_in_a_row = 0
        try:
            conn = await self._connection()
            for pending, copy_sql, line, note, kind in (
                (pending_runs, COPY_RUNS, self._run_line, self._run_note, "runs"),
                (pending_logs, COPY_LOGS, self._log_line, self._log_note, "logs"),
            ):
                while pending and failures_in_a_row < GIVE_UP_AFTER:
                    if await self._copy_one(conn, copy_sql, line, note, pending[0]):
                        failures_in_a_row = 0
                    else:
                        failures_in_a_row += 1
                        lost[kind] += 1
                    pending.pop(0)
        except (psycopg.OperationalError, OSError) as exc:
            log.warning("cannot record runs now: %s", exc)
            await self._drop_connection()
            self._put_back(pending_runs, pending_logs)
            return False
        # Several records in a row that not even a note could replace: the problem
        # is not the records (no table, no privilege). The rest are not tried.
        lost["runs"] += len(pending_runs)
        lost["logs"] += len(pending_logs)
        if lost["runs"] or lost["logs"]:
            log.error("dropped %d runs and %d log lines that could not be stored", *lost.values())
            self._dropped("runs", lost["runs"])
            self._dropped("logs", lost["logs"])
            return False
        return True

    async def _copy_one(
        self,
        conn: psycopg.AsyncConnection[Any],
        copy_sql: str,
        line: Callable[[Any], str],
        note: Callable[[Any, str], str],
        entry: Any,
    ) -> bool:
        """Store `entry`, or a note in its place; False when neither could be stored."""
        try:
            await self._copy_text(conn, copy_sql, _safe_line(line, note, entry))
            return True
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            reason = f"the database refused the record: {_refusal(exc)}"
        try:
            await self._copy_text(conn, copy_sql, note(entry, reason))
            return True
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            return False

    @staticmethod
    async def _copy_text(conn: psycopg.AsyncConnection[Any], copy_sql: str, text: str) -> None:
        async with conn.transaction(), conn.cursor().copy(copy_sql) as copy:
            await copy.write(text.encode())

    def _put_back(self, runs: list[RunEntry], logs: list[LogEntry]) -> None:
        limit = self.config.buffer_size
        self._dropped("runs", _return_to_front(self.runs, runs, limit))
        self._dropped("logs", _return_to_front(self.logs, logs, limit))
        self.buffered_bytes = sum(map(_run_size, self.runs)) + sum(map(_log_size, self.logs))

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

    def _run_line(self, entry: RunEntry, note: str | None = None) -> str:
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
        started = self._timestamp(entry.ended - entry.duration)
        return (
            f"{run.id}\t{run.action}\t{run.trigger}\t{status}\t{_field(input_json)}"
            f"\t{_field(output)}\t{_field(error_json)}\t{started}\t{entry.duration * 1000}"
            f"\t{run.attempt}\t{_text(run.trace_id)}\t{run.parent_id or NULL}"
            f"\t{run.job_id or NULL}\t{_text(entry.user_id)}\t{_text(entry.org_id)}\n"
        )

    def _run_note(self, entry: RunEntry, reason: str) -> str:
        return self._run_line(entry, note=reason)

    def _log_line(self, entry: LogEntry, note: str | None = None) -> str:
        at = self._timestamp(entry.at)
        fields: str | None
        if note is not None:
            message, fields = "(a log line that could not be stored)", _note(note)
        else:
            message, fields = entry.message.replace("\x00", ""), self._json(entry.fields)
        return f"{entry.run_id}\t{at}\t{entry.level}\t{_field(message)}\t{_field(fields or '{}')}\n"

    def _log_note(self, entry: LogEntry, reason: str) -> str:
        return self._log_line(entry, note=reason)

    def _timestamp(self, seconds: float) -> str:
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
        if len(value) > self.config.max_value_bytes:
            return _note(
                f"not stored: {len(value)} bytes, over runs.max_value_bytes "
                f"({self.config.max_value_bytes})",
                size=len(value),
            )
        text = value.decode()
        if self.redactor.could_hold_secrets(text):
            text = dumps(self.redactor.redact(orjson.loads(value))).decode()
        return _storable_json(text)


def _note(reason: str, **more: Any) -> str:
    """What is stored in place of a value that could not be: valid JSON saying why."""
    return dumps({"unrecordable": reason, **more}).decode()


def _safe_line(line: Callable[[Any], str], note: Callable[[Any, str], str], entry: Any) -> str:
    """`line(entry)`, or its note if making the line fails: never a whole batch lost."""
    try:
        return line(entry)
    except Exception as exc:
        log.exception("a run record could not be encoded; storing a note instead")
        return note(entry, f"{type(exc).__name__}: {str(exc)[:200]}")


async def _write_in_slices(
    copy: Any, entries: list[T], line: Callable[[T], str], note: Callable[[T, str], str]
) -> None:
    """Encode and send `entries` a slice at a time, letting requests run in between:
    a whole batch at once held the event loop for milliseconds (a p99 spike). A
    slice ends after SLICE entries or SLICE_CHARS of text, whichever comes first,
    so that runs with large inputs do not hold the loop either."""
    chunk: list[str] = []
    size = 0
    for entry in entries:
        text = _safe_line(line, note, entry)
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


def _refusal(exc: psycopg.Error) -> str:
    """Why the database refused a record, without the record: the server's detail
    and context lines quote the row, secrets and all."""
    return f"{type(exc).__name__}: {(exc.diag.message_primary or '')[:200]}"


def _text(text: str | None) -> str:
    """A caller-supplied text (a token's subject, an org id, a trace id) for COPY:
    PostgreSQL's text cannot hold NUL, which would fail the whole batch."""
    if text is not None and "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return _field(text)


def _storable_json(text: str) -> str:
    """JSON that jsonb accepts: it refuses the NUL character, even escaped."""
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text
