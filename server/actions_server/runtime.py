"""The running app's resources, opened and closed in one AsyncExitStack.

`open_runtime` is the single place where a process acquires what it needs
(migrations applied, the pool open, the executor built) and releases it in
reverse order, whether it serves HTTP, runs `call`, or anything else.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from . import loops
from .auth import Auth
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .db.embedded import start_embedded
from .db.migrate import apply_migrations
from .db.orgs import id_formats
from .db.pool import Database
from .executor import Executor
from .guards import GuardFactory
from .redaction import Redactor
from .registry import Registry
from .runs.recorder import RunRecorder
from .services import open_services


@dataclass(slots=True, kw_only=True)
class Runtime:
    config: Config
    registry: Registry  # replaced whole on reload, never mutated
    database: Database
    executor: Executor
    dsn: str
    listen_dsn: str  # for LISTEN: `database.listen_url`, or `dsn`


def resolve_dsn(config: Config) -> str:
    """The database URL to connect to, starting the embedded server if configured."""
    if config.database.is_embedded:
        return start_embedded(config.state_dir)
    return config.database.url


@asynccontextmanager
async def open_runtime(
    config: Config,
    registry: Registry,
    *,
    dsn: str,
    migrate_app: bool = True,
    migrate: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[Runtime]:
    """Apply migrations (framework always when `migrate`, the app's when `migrate_app`),
    open the pool, and yield the Runtime; close everything on the way out. `clock`
    cuts the rate-limit windows (tests pass one they control)."""
    async with AsyncExitStack() as stack:
        if migrate:
            await apply_migrations(
                dsn, config.migrations if migrate_app else None, run_role=config.database.role
            )
        pool = config.database.pool
        database = Database(
            dsn,
            min_size=pool.min,
            max_size=pool.max,
            acquire_timeout=pool.acquire_timeout_seconds,
            statement_timeout=config.database.statement_timeout_seconds,
            name=config.app,
            transaction_pooling=config.database.transaction_pooling,
        )
        await database.open()
        stack.push_async_callback(database.close)
        services = await open_services(config, database, stack)
        auth = Auth(config.auth)
        async with database.pool.connection() as conn:
            ids = await id_formats(conn, config.auth.orgs)
            await auth.revoked.refresh(conn)  # a token revoked before a restart stays refused
        refreshing = auth.revoked.start(database.detached)
        stack.push_async_callback(loops.stop, refreshing)
        guards = GuardFactory(
            services.detached_kv, config.auth.orgs, config.root, ids=ids, clock=clock
        )
        redactor = Redactor(config.runs.redact_keys)
        recorder = None
        if config.runs.enabled:
            level = logging.getLevelName(config.logging.level.upper())
            recorder = RunRecorder(
                dsn,
                config.runs,
                redactor,
                min_level=level,
                prepare=not config.database.transaction_pooling,
            )
            recorder.start()
            # Closed before the pool (LIFO): the last runs are flushed first.
            stack.push_async_callback(recorder.close)
        executor = Executor(
            database,
            auth,
            guards,
            registry,
            services,
            role=config.database.role,
            recorder=recorder,
            redactor=redactor,
            default_timeouts={
                **dict.fromkeys(
                    ("api", "webhook", "mcp", "join", "channel"),
                    config.server.action_timeout_seconds,
                ),
                **dict.fromkeys(("job", "event", "cron"), config.queue.action_timeout_seconds),
            },
        )
        stack.push_async_callback(executor.watchdog.close)
        yield Runtime(
            config=config,
            registry=registry,
            database=database,
            executor=executor,
            dsn=dsn,
            listen_dsn=config.database.listen_url or dsn,
        )
