"""One app under test: its runtime on a fresh database, and what a test does with it.

`open_test_app(config, dsn)` opens the app as `serve` would (pools, services,
executor), with three changes for tests: mail goes to the outbox table, storage
to a temporary folder, and time to a `ManualClock`. Nothing listens on a socket
until a test asks for `client` (see `plugin.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..auth import SYSTEM, USER_KIND, Principal
from ..builtins import load_app
from ..config import Config
from ..errors import ActionsServerError
from ..guards import Caller
from ..ids import new_trace_id
from ..jsonutil import loads
from ..queue import store
from ..queue.worker import Worker
from ..runtime import Runtime, open_runtime
from .clock import ManualClock, Q


@dataclass(frozen=True, slots=True, kw_only=True)
class Ran:
    """A job, event delivery or cron run that a drain ran (or tried)."""

    id: int
    action: str
    kind: str  # job, event or cron
    status: str  # done, dead, or queued again for a retry
    payload: Any
    attempts: int
    error: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """A message in the outbox."""

    to: list[str]
    subject: str
    text: str | None
    html: str | None
    sender: str | None
    template: str | None


class Jobs:
    """`await jobs.drain()` runs every due job and event delivery, and what they queue."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def drain(self, *, within_seconds: float = 30.0) -> list[Ran]:
        """Run queued jobs and event deliveries until none is due; what ran, in order.

        A real worker does it, so retries, transactions and dead jobs behave as in
        production. A job retried later (backoff) is not waited for: move the
        clock on (`await clock.advance(s)`) and drain again.
        """
        database = self.runtime.database
        async with database.detached() as conn:
            before = {row["id"]: row["attempts"] for row in await _rows(conn, Q["attempts"])}
        stop = asyncio.Event()
        worker = Worker(
            self.runtime.executor, database, self.runtime.config.queue, dsn=self.runtime.dsn
        )
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + within_seconds
        try:
            while True:
                async with database.detached() as conn:
                    busy = (await _rows(conn, Q["busy"]))[0]["n"]
                if not busy and not worker.running:
                    break
                if task.done() or time.monotonic() > deadline:
                    raise ActionsServerError(
                        f"jobs still running after {within_seconds} s of drain()"
                    )
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await task
        async with database.detached() as conn:
            after = {row["id"]: row["attempts"] for row in await _rows(conn, Q["attempts"])}
            changed = [i for i, n in after.items() if n != before.get(i, 0)]
            rows = await _rows(conn, Q["ran"], {"ids": changed})
        return [
            Ran(
                id=row["id"],
                action=row["action"],
                kind=row["kind"],
                status=row["status"],
                payload=row["payload"],
                attempts=row["attempts"],
                error=row["last_error"],
            )
            for row in rows
        ]


class Cron:
    """`await cron.fire(action)` runs a cron action's tick as the scheduler would."""

    def __init__(self, runtime: Runtime, jobs: Jobs, clock: ManualClock) -> None:
        self.runtime, self.jobs, self.clock = runtime, jobs, clock

    async def fire(self, action: str, at: Any = None) -> list[Ran]:
        """Queue the tick of `action` for `at` (a datetime; the kit's clock by default)
        and drain: what ran, the tick first. A tick that already ran does not run again."""
        spec = self.runtime.registry.action(action)
        if spec is None or not any(t.kind == "cron" for t in spec.triggers):
            raise ActionsServerError(f"no cron action named {action!r}")
        moment = at or datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        async with self.runtime.database.control() as conn:
            await store.enqueue_tick(
                conn,
                action,
                moment,
                max_attempts=spec.retry.attempts,
                trace_id=new_trace_id(),
                principal=SYSTEM.to_json(),
            )
        return await self.jobs.drain()


class Outbox:
    """`mail.outbox`: the messages the app sent (mail is delivered by a job: drain first)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def messages(self) -> list[Mail]:
        async with self.runtime.database.detached() as conn:
            rows = await _rows(conn, Q["outbox"])
        return [
            Mail(
                to=list(row["recipients"]),
                subject=row["subject"],
                text=row["text_body"],
                html=row["html_body"],
                sender=row["sender"],
                template=row["template"],
            )
            for row in rows
        ]


class TestApp:
    """The app under test: `call`, `token`, `headers`, `jobs`, `cron`, `mail`, `clock`."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, runtime: Runtime, clock: ManualClock, storage: Path) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.clock = clock
        self.storage_path = storage
        self.jobs = Jobs(runtime)
        self.cron = Cron(runtime, self.jobs, clock)
        self.mail = Outbox(runtime)

    async def call(
        self,
        name: str,
        input: Any = None,
        *,
        user: str | None = None,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        org: str | None = None,
        system: bool = False,
    ) -> Any:
        """Run action `name` behind its guards and schemas, without HTTP, as `user` (with
        `roles` and `permissions`) in `org`, or as the system, or anonymous; its output
        as JSON would carry it (ids as strings), or the ActionError it answered with
        (raised)."""
        spec = self.runtime.registry.action(name)
        if spec is None:
            raise ActionsServerError(f"no action named {name!r}")
        principal = SYSTEM if system else Principal()
        if user is not None:
            principal = Principal(
                kind=USER_KIND,
                user_id=user,
                roles=frozenset(roles),
                permissions=frozenset(permissions),
                claims={"sub": user},
            )
        result = await self.runtime.executor.run(
            spec,
            {} if input is None else input,
            trigger="cli",
            caller=Caller(principal=principal, org_header=org),
        )
        if result.response is not None and result.response.is_stream:
            return result.output
        return loads(result.json) if result.json else None  # what a client would read

    def token(
        self,
        user: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        ttl: int = 3600,
    ) -> str:
        """A bearer token for `user`, signed with the app's key, issued at the kit's clock."""
        return self.runtime.executor.auth.issuer.issue(
            user, roles=roles, permissions=permissions, ttl_seconds=ttl
        )

    def headers(
        self,
        user: str | None = None,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        org: str | None = None,
    ) -> dict[str, str]:
        """Request headers for `client`: a bearer token for `user`, and `x-org-id`."""
        found: dict[str, str] = {}
        if user is not None:
            found["Authorization"] = (
                f"Bearer {self.token(user, roles=roles, permissions=permissions)}"
            )
        if org is not None:
            found["x-org-id"] = str(org)
        return found

    async def sql(self, query: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of `query` (parameters as %s), run outside any run: to arrange or check data."""
        async with self.runtime.database.detached() as conn:
            return await _rows(conn, query, params or None)


@asynccontextmanager
async def open_test_app(config: Config, dsn: str, storage: Path) -> AsyncIterator[TestApp]:
    """The app of `config` on the database `dsn`, with mail to the outbox, storage in
    `storage` and a manual clock."""
    config = dataclasses.replace(
        config,
        mail=dataclasses.replace(config.mail, transport="outbox"),
        storage=dataclasses.replace(config.storage, backend="local", path=str(storage)),
    )
    holder: dict[str, Runtime] = {}

    async def travel(seconds: float) -> None:
        async with holder["runtime"].database.detached() as conn:
            await conn.execute(Q["travel_kv"], {"seconds": seconds})
            await conn.execute(Q["travel_jobs"], {"seconds": seconds})

    clock = ManualClock(travel=travel)
    registry = load_app(config)
    async with open_runtime(config, registry, dsn=dsn, migrate=False, clock=clock) as runtime:
        holder["runtime"] = runtime
        auth = runtime.executor.auth
        auth.verifier.clock = clock
        auth.issuer.clock = clock
        yield TestApp(runtime, clock, storage)


async def _rows(conn: Any, query: str, params: Any = None) -> list[dict[str, Any]]:
    cursor = await conn.execute(query, params)
    if cursor.description is None:
        return []
    columns = [c.name for c in cursor.description]
    return [
        row if isinstance(row, dict) else dict(zip(columns, row, strict=True))
        for row in await cursor.fetchall()
    ]
