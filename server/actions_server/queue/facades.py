"""`ctx.queue` and `ctx.event`: jobs and events written with the run's transaction.

`push` inserts at once, in the run's transaction, and returns the job id.
`emit` is a plain call, so a forgotten `await` cannot drop an event: it is
buffered and written, with one delivery per subscribed action, just before the
run commits (awaiting its result works too and changes nothing). Either way a
rolled-back run leaves no job and no event behind, and a committed one loses
none. Each job and delivery carries the run's trace id, its run id as parent,
and its principal, under which the action it reaches will run.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..errors import ActionsServerError
from ..jsonutil import dumps
from ..manifests.model import ActionSpec
from ..registry import Registry
from . import store

if TYPE_CHECKING:
    from ..scope import RunScope

JOB_PREFIX = "job."
# Rows per INSERT of a bulk push or emit: big enough that a statement's round trip
# is noise, small enough that one statement's arrays stay a few megabytes.
BULK_ROWS = 5000
UNIQUE_RACE_TRIES = 3


class QueueError(ActionsServerError):
    """A push or an emit that cannot be done as asked: a bug in the calling handler."""


class Emitted:
    """What `ctx.event.emit` returns: awaiting it completes at once."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that finishes at once: `await emitted` is harmless

    def __repr__(self) -> str:
        return f"<Emitted {self.name!r}>"


class EventBuffer:
    """The events a run emitted, written just before it commits."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: list[tuple[str, Any]] = []

    def add(self, name: str, payload: Any) -> None:
        self._events.append((name, payload))

    def __bool__(self) -> bool:
        return bool(self._events)

    def mark(self) -> Callable[[], None]:
        """A function that forgets what is emitted from now on (a savepoint rolled back)."""
        size = len(self._events)

        def rewind() -> None:
            del self._events[size:]

        return rewind

    async def flush(self, ctx: RunScope, registry: Registry) -> None:
        """Write the events and their deliveries: a few statements however many there are."""
        events, self._events = self._events, []
        if not events:
            return
        conn = await ctx.db.connection()
        principal = ctx.auth.as_principal().to_json()
        names = {name for name, _ in events}
        subscriptions = [
            store.Subscription(name, action.name, action.retry.attempts)
            for name in sorted(names)
            for action in registry.subscriptions.get(name, ())
        ]
        for start in range(0, len(events), BULK_ROWS):
            chunk = events[start : start + BULK_ROWS]
            await store.record_events(
                conn,
                chunk,
                subscriptions,
                trace_id=ctx.run.trace_id,
                parent_run_id=ctx.run.id,
                principal=principal,
            )
        counts = Counter(name for name, _ in events)
        for name in names:
            subscribers = len(registry.subscriptions.get(name, ()))
            if subscribers:
                metrics.count_event_deliveries(name, counts[name] * subscribers)


class Events:
    """`ctx.event`."""

    __slots__ = ("_buffer",)

    def __init__(self, buffer: EventBuffer) -> None:
        self._buffer = buffer

    def emit(self, name: str, payload: Any = None) -> Emitted:
        """Record event `name`; every action subscribed with `event: name` gets it once."""
        _check_event_name(name)
        self._buffer.add(name, _payload(name, payload))
        return Emitted(name)

    def emit_many(self, name: str, payloads: Iterable[Any]) -> Emitted:
        """Record one event `name` per payload, written together before the run commits."""
        _check_event_name(name)
        checked = [_payload(name, payload) for payload in payloads]  # all before any is kept
        for payload in checked:
            self._buffer.add(name, payload)
        return Emitted(name)


class Queue:
    """`ctx.queue`."""

    __slots__ = ("_ctx", "_registry")

    def __init__(self, ctx: RunScope, registry: Registry) -> None:
        self._ctx = ctx
        self._registry = registry

    async def push(
        self,
        name: str,
        payload: Any = None,
        *,
        delay: float | datetime.timedelta | None = None,
        run_at: datetime.datetime | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        unique_key: str | None = None,
    ) -> int:
        """Queue job `name` for the actions triggered by `event: job.<name>`; its id.

        With several such actions, one job per action is queued and the first id
        is returned. With `unique_key`, a job is not queued while an unfinished
        one holds the key: the id is that job's.
        """
        plan = self._plan(name, delay, run_at, max_attempts)
        jobs = plan.jobs(_payload(name, payload), priority, unique_key)
        conn = await self._ctx.db.connection()
        keys = [j.unique_key for j in jobs if j.unique_key]
        for _ in range(UNIQUE_RACE_TRIES):
            ids = await store.enqueue(conn, jobs)
            if ids:
                return ids[0]
            held = await store.existing(conn, keys)
            if held:
                return min(held.values())
            # The holder finished between the insert and the lookup: the key is free now.
        raise QueueError(f"{name!r}: unique_key {unique_key!r} is contended; try again")

    async def push_many(
        self,
        name: str,
        payloads: Iterable[Any],
        *,
        delay: float | datetime.timedelta | None = None,
        run_at: datetime.datetime | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
    ) -> list[int]:
        """Queue one job `name` per payload, in the run's transaction, a few statements
        for any number; their ids in the order of `payloads` (with several actions
        handling the job, the first action's). No `unique_key`: push those one by one.
        """
        plan = self._plan(name, delay, run_at, max_attempts)
        checked = [_payload(name, payload) for payload in payloads]  # all before any is sent
        templates = plan.jobs(None, priority, None)
        conn = await self._ctx.db.connection()
        ids: list[int] = []
        for start in range(0, len(checked), BULK_ROWS):
            chunk = checked[start : start + BULK_ROWS]
            for n, template in enumerate(templates):  # the first action's ids are returned
                queued = await store.enqueue_payloads(conn, template, chunk)
                if n == 0:
                    ids.extend(queued)
        return ids

    def _plan(
        self,
        name: str,
        delay: float | datetime.timedelta | None,
        run_at: datetime.datetime | None,
        max_attempts: int | None,
    ) -> _JobPlan:
        actions = self._registry.subscriptions.get(JOB_PREFIX + name, ())
        if not actions:
            raise QueueError(
                f"no action handles job {name!r}: give one the trigger `event: job.{name}`"
            )
        if delay is not None and run_at is not None:
            raise QueueError("push() takes delay or run_at, not both")
        if run_at is not None and run_at.tzinfo is None:
            raise QueueError("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
        if max_attempts is not None and max_attempts < 1:
            raise QueueError("max_attempts must be at least 1")
        seconds = delay.total_seconds() if isinstance(delay, datetime.timedelta) else delay
        ctx = self._ctx
        return _JobPlan(
            name=name,
            actions=actions,
            delay_seconds=seconds,
            run_at=run_at,
            max_attempts=max_attempts,
            trace_id=ctx.run.trace_id,
            parent_run_id=ctx.run.id,
            principal=ctx.auth.as_principal().to_json(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _JobPlan:
    """What every job of one push shares."""

    name: str
    actions: Sequence[ActionSpec]
    delay_seconds: float | None
    run_at: datetime.datetime | None
    max_attempts: int | None
    trace_id: str | None
    parent_run_id: str | None
    principal: Mapping[str, Any]

    def jobs(self, payload: Any, priority: int, unique_key: str | None) -> list[store.NewJob]:
        """One job per action handling it (a shared key made per action)."""
        single = len(self.actions) == 1
        return [
            store.NewJob(
                kind="job",
                name=self.name,
                action=action.name,
                payload=payload,
                max_attempts=self.max_attempts or action.retry.attempts,
                priority=priority,
                delay_seconds=self.delay_seconds,
                run_at=self.run_at,
                unique_key=unique_key if single else _per_action(unique_key, action.name),
                trace_id=self.trace_id,
                parent_run_id=self.parent_run_id,
                principal=self.principal,
            )
            for action in self.actions
        ]


def _per_action(unique_key: str | None, action: str) -> str | None:
    return None if unique_key is None else f"{unique_key}|{action}"


def _check_event_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise QueueError("an event needs a name")
    if name.startswith(JOB_PREFIX):
        raise QueueError(f"{name!r}: names starting with 'job.' are jobs; use ctx.queue.push")


def _payload(name: str, payload: Any) -> Any:
    """`payload` as it is stored (None is an empty object); a QueueError if it is not a
    JSON object."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise QueueError(
            f"{name!r}: the payload must be a JSON object (a dict), not {type(payload).__name__}"
        )
    try:
        dumps(payload)
    except TypeError as exc:
        raise QueueError(f"{name!r}: the payload is not JSON: {exc}") from None
    return payload
