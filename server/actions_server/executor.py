"""One way to run an action, whatever triggered it:
guards → validate input → handler → validate output → commit → record.

The executor is the only place that decides how a run ends. It returns the
handler's output or raises an `ActionError`: a handler's own ActionError passes
through, a database error a client caused becomes its 4xx (see db/errors.py),
a lost database becomes 503, and anything else becomes a 500 whose message
hides the cause (the log line with the trace id has it). The run's transaction
commits only when the handler returned a valid output; otherwise nothing it
wrote survives.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg

from . import metrics, receipts, redaction
from .answers import REPLAYED, Result, encode, keep, raw_note
from .auth import Auth, AuthContext
from .context import Context
from .db.errors import connection_lost, map_database_error
from .db.pool import Database
from .db.session import DbSession, TransactionAborted
from .errors import (
    ActionError,
    ActionTimeout,
    BackendUnavailable,
    DatabaseUnavailable,
    InternalError,
    ValidationFailed,
)
from .guards import NOBODY, Caller, Guard, GuardCall, GuardFactory
from .ids import new_trace_id
from .manifests.model import ActionSpec
from .receipts import ReceiptKey, Stored
from .redaction import Redactor
from .registry import Registry
from .request import HttpRequest
from .response import Response
from .runs.lines import RunEntry
from .runs.recorder import RunRecorder, error_record
from .scope import RunInfo
from .services import Services
from .watchdog import Watchdog

log = logging.getLogger("actions_server.executor")

# A run stopped from outside (shutdown, a cancelled request): recorded as such.
_CANCELLED = {"code": "cancelled", "message": "the run was cancelled", "status": 503}

# Successful, fast runs of these triggers are stored as a sample (runs.sample_rate).
SAMPLED_TRIGGERS = frozenset({"api", "webhook", "mcp"})
_random = random.random

# Runs the worker starts: their connections come from the jobs pool.
WORKER_TRIGGERS = frozenset({"job", "event", "cron"})

# Marks a job done inside the run's transaction (see Executor.run).
Completion = Callable[[DbSession], Awaitable[None]]


class Executor:
    """Runs actions against one database, behind their guards."""

    def __init__(
        self,
        database: Database,
        auth: Auth,
        guards: GuardFactory,
        registry: Registry,
        services: Services,
        *,
        role: str | None = None,
        recorder: RunRecorder | None = None,
        redactor: Redactor = redaction.DEFAULT,
        default_timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.database = database
        # Successful HTTP runs stored: a sample (docs/runs.md).
        self.sample_rate = recorder.config.sample_rate if recorder is not None else 1.0
        self.slow_seconds = recorder.config.slow_ms / 1000 if recorder is not None else 0.0
        # trigger → seconds, for actions without their own timeout_seconds
        self.default_timeouts = dict(default_timeouts or {})
        self.watchdog = Watchdog()
        self._loop: asyncio.AbstractEventLoop | None = None  # see _current_task
        self.auth = auth
        self.services = services
        self.recorder = recorder
        self.redactor = redactor
        self.guard_factory = guards
        self.role = role
        self._guards: dict[str, tuple[ActionSpec, tuple[Guard, ...]]] = {}
        self.use_registry(registry)

    def use_registry(self, registry: Registry) -> None:
        """Serve `registry`'s actions; their guards are built once, ahead of the first run."""
        self._guards = {
            a.name: (a, self.guard_factory.compile(a)) for a in registry.actions.values()
        }
        self.registry = registry

    def guards_of(self, action: ActionSpec) -> tuple[Guard, ...]:
        known = self._guards.get(action.name)
        if known is not None and known[0] is action:
            return known[1]
        guards = self.guard_factory.compile(action)
        self._guards[action.name] = (action, guards)
        return guards

    async def run(
        self,
        action: ActionSpec,
        payload: Any,
        *,
        trigger: str,
        caller: Caller = NOBODY,
        trace_id: str | None = None,
        parent_id: str | None = None,
        attempt: int = 1,
        job_id: str | None = None,
        completion: Completion | None = None,
        request: Callable[[], HttpRequest] | None = None,
        receipt: ReceiptKey | None = None,
        status: int = 200,
        record: bool = True,
    ) -> Result:
        """Run `action` with `payload` for `caller`: its output, or an ActionError.

        `completion`, for a job, marks the job done inside the run's transaction
        when the run touched the database, so that the job's effects and its
        completion commit together; `Result.completed` says whether it did.

        `request` makes `ctx.request` (HTTP runs). With a `receipt`, a request
        that already ran gets its kept answer (`Result.replayed`) without running
        the handler again, and a first run's answer (with `status`, the
        trigger's, unless the handler's Response says otherwise) is kept in its
        transaction.
        `record=False` leaves the run out of the runs table and the metrics (a
        realtime channel's periodic re-check of a join, which no one asked for).
        """
        run = RunInfo(
            None,  # made if the run is stored or a handler reads it
            trace_id or new_trace_id(),
            action.name,
            trigger,
            attempt,
            job_id,
            parent_id,
        )
        principal = caller.principal
        session = DbSession(
            self.database,
            transactional=action.transaction,
            role=self.role,
            jobs=trigger in WORKER_TRIGGERS,
        )
        if principal.user_id is not None:
            session.set_local("app.user_id", principal.user_id)
        if principal.org_id is not None:
            session.set_local("app.org_id", principal.org_id)
        ctx = Context(
            db=session,
            run=run,
            auth=AuthContext(self.auth, principal),
            registry=self.registry,
            services=self.services,
            recorder=self.recorder,
            redactor=self.redactor,
            request=request,
        )
        completed = False
        replayed: Stored | None = None
        response: Response | None = None
        started = time.perf_counter() if record else None
        limit = None if action.timeout_seconds is not None else self.default_timeouts.get(trigger)
        watched = self._current_task() if limit is not None else None
        if watched is not None:
            assert limit is not None
            self.watchdog.watch(watched, limit)
        try:
            plain = not action.guards and action.input is None and receipt is None
            if action.timeout_seconds is None and plain:
                output = await action.handler(payload, ctx)  # nothing to check first
            elif action.timeout_seconds is None:
                output = await self._guarded(action, payload, ctx, caller, receipt)
            else:
                try:
                    async with asyncio.timeout(action.timeout_seconds):
                        output = await self._guarded(action, payload, ctx, caller, receipt)
                except TimeoutError:
                    raise ActionTimeout(
                        f"the action took longer than {action.timeout_seconds:g}s"
                    ) from None
            if isinstance(output, Stored):  # a retry: the kept answer, nothing ran
                replayed, output, body = output, None, REPLAYED
            else:
                if isinstance(output, Response):  # the output schema is the body's
                    response, output = output, output.body
                # Encoded before the commit: output JSON cannot hold must not leave
                # committed work behind an error the client never sees.
                body = (
                    raw_note(response)
                    if response is not None and response.is_raw
                    else encode(output)
                )
                if action.output is not None and (response is None or not response.is_raw):
                    _check_output(action, output, run)
                if receipt is not None:
                    await keep(ctx, receipt, response, output, body, status)
            if ctx.has_pending:
                await ctx.flush_events()
            if completion is not None and session.used:
                await completion(session)
                completed = True
        except BaseException as exc:
            failure: BaseException = exc
            if watched is not None and self.watchdog.fired(watched):
                watched.uncancel()  # the watchdog's cancel, not the caller's: a timeout
                failure = ActionTimeout(
                    f"the action took longer than {limit:g}s (the default limit)"
                )
            if watched is not None:
                self.watchdog.forget(watched)
            await self._abandon(session, run)
            if isinstance(failure, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                self._record(run, ctx.auth, payload, None, _CANCELLED, started)
                raise
            error = self._translate(failure, run)
            self._record(run, ctx.auth, payload, None, error_record(error, failure), started)
            raise error from exc
        if watched is not None:
            self.watchdog.forget(watched)
        if session.used:
            try:
                await session.finish(commit=True)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                self._record(run, ctx.auth, payload, None, _CANCELLED, started)
                raise
            except BaseException as exc:
                error = self._translate(exc, run)
                self._record(run, ctx.auth, payload, None, error_record(error, exc), started)
                raise error from exc
        # The output as encoded for the response: no second encoding, and a handler
        # that keeps its returned object and changes it later cannot alter the record.
        self._record(run, ctx.auth, payload, body, None, started, ctx.logged)
        return Result(output, body, completed, response, ctx.response_cookies, replayed)

    def _current_task(self) -> asyncio.Task[Any] | None:
        """`asyncio.current_task()`, given the loop it ran on last time: looking up
        the running loop makes a getpid() system call on Python 3.11 (250 against
        80 ns in a tight loop; py-spy put it at several per cent of a `GET /hello`,
        A/B runs at 0–2%). Another loop's runs find no task of theirs under the
        old loop and look it up again."""
        loop = self._loop
        task = asyncio.current_task(loop) if loop is not None else None
        if task is None:
            self._loop = loop = asyncio.get_running_loop()
            task = asyncio.current_task(loop)
        return task

    def _record(
        self,
        run: RunInfo,
        auth: AuthContext,
        payload: Any,
        output: Any,
        error: dict[str, Any] | None,
        started: float | None,
        logged: bool = False,
    ) -> None:
        if started is None:  # not recorded
            return
        if error is None:
            metrics.observe_run(run.action, run.trigger, "ok")
        else:
            metrics.observe_run(
                run.action, run.trigger, "rejected" if error["status"] < 500 else "error"
            )
        recorder = self.recorder
        if recorder is not None:
            ended = time.perf_counter()
            if (
                error is None
                and run.trigger in SAMPLED_TRIGGERS
                and ended - started < self.slow_seconds
                and not logged
                and _random() >= self.sample_rate
            ):
                return  # counted in the metrics above; not stored
            recorder.add_run(
                RunEntry(
                    run,
                    auth.user_id,
                    auth.org_id,
                    payload,
                    output,
                    error,
                    time.time(),
                    ended - started,
                )
            )

    async def _guarded(
        self,
        action: ActionSpec,
        payload: Any,
        ctx: Context,
        caller: Caller,
        receipt: ReceiptKey | None = None,
    ) -> Any:
        guards = self.guards_of(action)
        if guards:
            call = GuardCall(ctx, caller, payload, action)
            for guard in guards:
                pending = guard(call)
                if pending is not None:
                    await pending
        _check_input(action, payload, self.redactor)
        if receipt is not None:  # after the guards: only the caller may see its answer
            stored = await receipts.look_up(await ctx.db.connection(), receipt)
            if stored is not None:
                return stored
        return await action.handler(payload, ctx)

    async def _abandon(self, session: DbSession, run: RunInfo) -> None:
        """Roll back after a failure; a broken connection must not hide the first error."""
        if not session.used:
            return
        try:
            await session.finish(commit=False)
        except (psycopg.Error, DatabaseUnavailable):
            log.warning(
                "rollback failed",
                extra={"action": run.action, "trace_id": run.trace_id},
                exc_info=True,
            )

    def _translate(self, exc: BaseException, run: RunInfo) -> ActionError:
        if isinstance(exc, ActionError):
            return exc
        if isinstance(exc, TransactionAborted):
            log.error(
                str(exc), extra={"action": run.action, "trace_id": run.trace_id, "run_id": run.id}
            )
            return InternalError(str(exc), code="transaction_aborted")
        down = self.services.outage(exc)
        if down is not None:
            log.warning(
                "%s in %s: %s",
                down,
                run.action,
                exc,
                extra={"action": run.action, "trace_id": run.trace_id},
            )
            return BackendUnavailable(down)
        mapped = map_database_error(exc)
        if mapped is not None:
            if connection_lost(exc):
                self.database.mark_down(f"{type(exc).__name__} in {run.action}")
            return mapped
        log.error(
            "unhandled %s in %s",
            type(exc).__name__,
            run.action,
            exc_info=exc,
            extra={"action": run.action, "trace_id": run.trace_id, "run_id": run.id},
        )
        return InternalError(f"internal error; see the server log for trace id {run.trace_id}")


def _check_input(action: ActionSpec, payload: Any, redactor: Redactor) -> None:
    schema = action.input
    if schema is None:
        return
    if schema.defaults and isinstance(payload, dict):
        for key, value in schema.defaults.items():
            if key not in payload:
                payload[key] = copy.deepcopy(value)
    errors = schema.errors(payload, redactor)
    if errors:
        raise ValidationFailed(details=errors)


def _check_output(action: ActionSpec, output: Any, run: RunInfo) -> None:
    assert action.output is not None
    errors = action.output.errors(output)
    if errors:
        log.error(
            "output does not match the output schema",
            extra={
                "action": action.name,
                "trace_id": run.trace_id,
                "run_id": run.id,
                "fields": {"errors": [e.to_json() for e in errors]},
            },
        )
        raise InternalError("the action produced an invalid output", code="invalid_output")
