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
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from .. import metrics
from ..config import RunsConfig
from ..errors import ActionError, traceback_text
from ..redaction import Redactor
from .lines import (
    COPY_LOGS,
    COPY_RUNS,
    LineWriter,
    LogEntry,
    RunEntry,
    encode,
    log_size,
    run_size,
)

log = logging.getLogger("actions_server.runs")

T = TypeVar("T")
SLICE = 50  # entries encoded between two turns of the event loop
SLICE_CHARS = 256 * 1024  # ...or this much text, whichever comes first
CLOSE_TIMEOUT_SECONDS = 5.0
GIVE_UP_AFTER = 3  # records in a row that even a note cannot replace


def error_record(error: ActionError, cause: BaseException | None) -> dict[str, Any]:
    """What is kept of a failed run: code, message, status, and a 500's traceback."""
    record: dict[str, Any] = {"code": error.code, "message": error.message, "status": error.status}
    if error.status >= 500 and cause is not None and cause is not error:
        record["traceback"] = traceback_text(cause)
    return record


class RunRecorder:
    def __init__(
        self,
        dsn: str,
        config: RunsConfig,
        redactor: Redactor,
        *,
        min_level: int = logging.INFO,
        prepare: bool = True,
    ) -> None:
        self.dsn = dsn
        self.prepare = prepare  # False through a transaction pooler (db/pool.py)
        self.min_level = min_level  # handler log lines below this are not stored
        self.config = config
        self.redactor = redactor
        self.runs: deque[RunEntry] = deque()
        self.logs: deque[LogEntry] = deque()
        self.buffered_bytes = 0  # of both buffers, by run_size and log_size
        self.dropped_runs = 0
        self.dropped_logs = 0
        self._wake = asyncio.Event()  # a batch is full
        self._stop = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.lines = LineWriter(redactor, config.max_value_bytes)

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
        self.buffered_bytes += run_size(entry)
        if len(self.runs) > self.config.buffer_size:
            self._drop_oldest_run()
        while self.buffered_bytes > self.config.buffer_bytes and len(self.runs) > 1:
            self._drop_oldest_run()
        if len(self.runs) >= self.config.batch_size:
            self._wake.set()

    def add_log(self, entry: LogEntry) -> None:
        entry = LogEntry(entry.run_id, entry.at, entry.level, entry.message, encode(entry.fields))
        self.logs.append(entry)
        self.buffered_bytes += log_size(entry)
        if len(self.logs) > self.config.buffer_size:
            self._drop_oldest_log()
        while self.buffered_bytes > self.config.buffer_bytes and len(self.logs) > 1:
            self._drop_oldest_log()
        if len(self.logs) >= self.config.batch_size:
            self._wake.set()

    def _drop_oldest_run(self) -> None:
        self.buffered_bytes -= run_size(self.runs.popleft())
        self._dropped("runs", 1)

    def _drop_oldest_log(self) -> None:
        self.buffered_bytes -= log_size(self.logs.popleft())
        self._dropped("logs", 1)

    def _take(self) -> tuple[list[RunEntry], list[LogEntry]]:
        size = self.config.batch_size
        runs = [self.runs.popleft() for _ in range(min(size, len(self.runs)))]
        logs = [self.logs.popleft() for _ in range(min(size, len(self.logs)))]
        self.buffered_bytes -= sum(map(run_size, runs)) + sum(map(log_size, logs))
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
                        await _write_in_slices(copy, runs, self.lines.run_line, self.lines.run_note)
                if logs:
                    async with cursor.copy(COPY_LOGS) as copy:
                        await _write_in_slices(copy, logs, self.lines.log_line, self.lines.log_note)
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
                (pending_runs, COPY_RUNS, self.lines.run_line, self.lines.run_note, "runs"),
                (pending_logs, COPY_LOGS, self.lines.log_line, self.lines.log_note, "logs"),
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
        self.buffered_bytes = sum(map(run_size, self.runs)) + sum(map(log_size, self.logs))

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
                self.dsn,
                autocommit=True,
                connect_timeout=5,
                **({} if self.prepare else {"prepare_threshold": None}),
            )
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None


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


def _refusal(exc: psycopg.Error) -> str:
    """Why the database refused a record, without the record: the server's detail
    and context lines quote the row, secrets and all."""
    return f"{type(exc).__name__}: {(exc.diag.message_primary or '')[:200]}"
