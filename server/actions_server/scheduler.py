"""Cron: APScheduler 3 fires in every instance; PostgreSQL makes each tick run once.

Every instance schedules every cron trigger. When a tick fires, the instance
inserts (action, scheduled fire time) into `actions_server.cron_ticks` and, in
the same statement, the job that runs the action; the first instance wins and
the others' inserts do nothing. The fire time comes from APScheduler's own
schedule (a custom executor receives it), never from the clock, so every
instance names the same tick. A tick missed by more than
`scheduler.misfire_grace_seconds` (the process was busy or asleep) is skipped,
logged and recorded, not replayed; missed ticks are coalesced, never a burst.

The same mechanism runs the framework's maintenance once per cluster each hour.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .auth import SYSTEM
from .config import Config
from .db.pool import OUTAGE_ERRORS as DB_ERRORS
from .db.pool import Connection, Database
from .ids import new_trace_id
from .loops import pause
from .maintenance import MAINTENANCE_CRON, MAINTENANCE_TICK, run_maintenance
from .manifests.cron import parse_cron, pins_hour, repeats_wall_time
from .queue import store
from .registry import Registry

log = logging.getLogger("actions_server.scheduler")

Fire = Callable[[str, datetime.datetime], Awaitable[None]]


class _TickExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 has no types
    """Hands our callback the scheduled fire times, which APScheduler keeps to itself."""

    def __init__(self, on_fire: Fire, on_misfire: Fire, grace: float) -> None:
        super().__init__()
        self._on_fire = on_fire
        self._on_misfire = on_misfire
        self._grace = datetime.timedelta(seconds=grace)

    def _do_submit_job(self, job: Any, run_times: list[datetime.datetime]) -> None:
        async def fire() -> None:
            now = datetime.datetime.now(datetime.UTC)
            for run_time in run_times:
                if now - run_time > self._grace:
                    await self._on_misfire(job.id, run_time)
                else:
                    await self._on_fire(job.id, run_time)

        def done(task: asyncio.Task[None]) -> None:
            self._pending_futures.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("cron tick of %s failed", job.id, exc_info=task.exception())
            self._run_job_success(job.id, [])

        task = self._eventloop.create_task(fire())
        task.add_done_callback(done)
        self._pending_futures.add(task)


class Scheduler:
    """The cron schedules of one registry, fired into the job table."""

    def __init__(self, config: Config, registry: Registry, database: Database) -> None:
        self.config = config
        self.database = database
        self.registry = registry
        self.misfires = 0
        self.ticks = 0
        self._scheduler: AsyncIOScheduler | None = None
        self._table = cron_table(registry)

    def start(self) -> None:
        grace = self.config.scheduler.misfire_grace_seconds
        scheduler = AsyncIOScheduler(
            executors={"default": _TickExecutor(self._fire, self._misfire, grace)},
            # max_instances: a tick still retrying must not make APScheduler skip the next.
            job_defaults={"coalesce": True, "max_instances": 1000, "misfire_grace_time": None},
            timezone=self.config.scheduler.timezone,
        )
        for job_id, cron in self._table.items():
            trigger = parse_cron(cron.expression, cron.timezone)
            scheduler.add_job(_placeholder, trigger, id=job_id, name=cron.action)
        scheduler.add_job(_placeholder, parse_cron(MAINTENANCE_CRON, "UTC"), id=MAINTENANCE_TICK)
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started with %d cron schedules", len(self.registry.schedules))

    def use_registry(self, registry: Registry) -> None:
        """Fire `registry`'s cron schedules from now on (a reload swapped the registry).

        A schedule whose expression and time zone did not change keeps its APScheduler
        job and so its next fire time: a reload neither loses nor repeats its tick. A
        changed one is rescheduled from now, a new one added, a removed one dropped.
        Ticks already handed to `_fire` look their action up in the new registry.
        """
        before, after = self._table, cron_table(registry)
        self.registry, self._table = registry, after
        if self._scheduler is None:
            return
        for job_id in before.keys() - after.keys():
            self._scheduler.remove_job(job_id)
        for job_id, cron in after.items():
            old = before.get(job_id)
            if old is None:
                trigger = parse_cron(cron.expression, cron.timezone)
                self._scheduler.add_job(_placeholder, trigger, id=job_id, name=cron.action)
            elif (old.expression, old.timezone) != (cron.expression, cron.timezone):
                trigger = parse_cron(cron.expression, cron.timezone)
                self._scheduler.reschedule_job(job_id, trigger=trigger)

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def next_fire_times(self) -> dict[str, datetime.datetime | None]:
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def _fire(self, job_id: str, fire_time: datetime.datetime) -> None:
        """Enqueue the tick; while the database refuses, try again until the grace runs out."""
        cron = self._table.get(job_id)
        if cron is not None and cron.pins_hour and repeats_wall_time(fire_time, cron.zone):
            return
        name = cron.action if cron is not None else job_id
        grace = datetime.timedelta(seconds=self.config.scheduler.misfire_grace_seconds)
        wait = 0.5
        while True:
            try:
                await self._enqueue(name, fire_time)
                return
            except Exception as exc:
                late = datetime.datetime.now(datetime.UTC) - fire_time
                if late + datetime.timedelta(seconds=wait) > grace:
                    log.error(
                        "cannot enqueue the %s tick of %s: %s", fire_time.isoformat(), name, exc
                    )
                    await self._record_misfire(name, fire_time)
                    return
                if not isinstance(exc, DB_ERRORS):
                    log.exception("cron tick of %s failed; trying again", name)
                await pause(wait)
                wait = min(wait * 2, 5.0)

    async def _enqueue(self, name: str, fire_time: datetime.datetime) -> None:
        async with self.database.control() as conn:
            if name == MAINTENANCE_TICK:
                await self._maintain(conn, fire_time)
                return
            action = self.registry.action(name)
            if action is None:
                return
            job_id = await store.enqueue_tick(
                conn,
                name,
                fire_time,
                max_attempts=action.retry.attempts,
                trace_id=new_trace_id(),
                principal=SYSTEM.to_json(),
            )
        if job_id is not None:
            self.ticks += 1
            log.debug("cron %s fired for %s (job %s)", name, fire_time.isoformat(), job_id)

    async def _maintain(self, conn: Connection, fire_time: datetime.datetime) -> None:
        # One transaction: if pruning fails, the hour is not claimed either, and this
        # or another instance tries again (within the grace) instead of losing it.
        async with conn.transaction():
            if await store.claim_tick(conn, MAINTENANCE_TICK, fire_time):
                await run_maintenance(conn, self.config)

    async def _misfire(self, job_id: str, fire_time: datetime.datetime) -> None:
        cron = self._table.get(job_id)
        await self._record_misfire(cron.action if cron is not None else job_id, fire_time)

    async def _record_misfire(self, name: str, fire_time: datetime.datetime) -> None:
        try:
            async with self.database.control() as conn:
                recorded = await store.record_misfire(conn, name, fire_time)
        except Exception as exc:  # the table is for the dashboard; the log says it anyway
            log.warning(
                "skipped the %s tick of %s (missed by more than the grace); cannot record it: %s",
                fire_time.isoformat(),
                name,
                exc,
            )
            self.misfires += 1
            return
        if not recorded:  # another instance ran it in time: nothing was missed
            log.debug(
                "the %s tick of %s ran elsewhere (or is recorded)", fire_time.isoformat(), name
            )
            return
        self.misfires += 1
        log.warning(
            "skipped the %s tick of %s: missed by more than the grace", fire_time.isoformat(), name
        )


@dataclass(frozen=True, slots=True)
class CronJob:
    action: str
    expression: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def pins_hour(self) -> bool:
        """When clocks go back, 01:30 happens twice; cron runs a job pinned to that hour
        once (an hourly or finer one on both passes), and so do we (see _fire)."""
        return pins_hour(self.expression)


def cron_table(registry: Registry) -> dict[str, CronJob]:
    """APScheduler job id → schedule: `action#n` for the action's n-th cron trigger.

    An action may have several cron triggers; ticks are still unique per action and
    fire time, so two triggers that fire at the same moment run the action once.
    """
    table: dict[str, CronJob] = {}
    for schedule in registry.schedules:
        name = schedule.action.name
        n = sum(1 for job in table.values() if job.action == name)
        table[f"{name}#{n}"] = CronJob(name, schedule.trigger.expression, schedule.trigger.timezone)
    return table


def _placeholder() -> None:  # pragma: no cover - _TickExecutor never calls job functions
    raise AssertionError("cron ticks are handled by _TickExecutor")
