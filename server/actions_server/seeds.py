"""Seeds: the data an app needs to be tried at once, from `seeds/` beside `migrations/`.

A seed is a `.sql` file, or a `.py` file with `async def seed(ctx)` where
`ctx.db` is the query builder (as in a handler), `ctx.kv` the KV store, and
`ctx.storage` the object store. Seeds run in file-name order, after the
migrations, each in its own transaction, as the database owner (not
`database.role`: Row-Level Security would hide one org's rows from a seed
that fills several). Each is recorded in `actions_server.migrations` (scope
`seed`) with a SHA-256 of its text, so it runs once; a seed changed after it
ran is reported, not run again. `fresh` forgets what ran and runs every seed
again: seeds that insert would insert twice, which is why the command refuses
it on anything but the embedded database unless told `--yes`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import hash_password
from .db.session import DbSession
from .errors import ActionsServerError
from .kv import KV
from .runtime import Runtime
from .storage import Storage

log = logging.getLogger("actions_server.seed")
SCOPE = "seed"
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"actions_server.seed").digest()[:8], "big", signed=True)


class SeedError(ActionsServerError):
    """A seed failed, cannot be read, or has no `async def seed(ctx)`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Seed:
    name: str
    path: Path
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedReport:
    applied: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # ran before, edited since: not run


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedContext:
    """The `ctx` of a Python seed."""

    db: DbSession
    kv: KV
    storage: Storage
    logger: logging.Logger

    async def hash_password(self, password: str) -> str:
        """The hash `ctx.auth.verify_password` checks (for seeded users who log in)."""
        return await hash_password(password)


def discover(folder: Path | None) -> list[Seed]:
    if folder is None or not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".sql", ".py") and not p.name.startswith(("_", "."))
    ]
    return [
        Seed(name=p.name, path=p, text=p.read_text(encoding="utf-8"))
        for p in sorted(found, key=lambda p: p.name)
    ]


async def run_seeds(runtime: Runtime, *, fresh: bool = False) -> SeedReport:
    """Run the seeds of `runtime.config.seeds` that have not run yet (all of them if
    `fresh`); what ran and what changed since it ran."""
    seeds = discover(runtime.config.seeds)
    report = SeedReport()
    database = runtime.database
    async with database.detached() as lock:
        await lock.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if fresh:
                await lock.execute(
                    "DELETE FROM actions_server.migrations WHERE scope = %s", (SCOPE,)
                )
            cursor = await lock.execute(
                "SELECT name, checksum FROM actions_server.migrations WHERE scope = %s", (SCOPE,)
            )
            done = dict(await _rows(cursor))
            for seed in seeds:
                if seed.name in done:
                    if done[seed.name] != seed.checksum:
                        report.changed.append(seed.name)
                    continue
                await _run(runtime, seed)
                report.applied.append(seed.name)
                log.info("seeded %s", seed.name)
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return report


async def _run(runtime: Runtime, seed: Seed) -> None:
    session = DbSession(runtime.database)  # the owner: no `database.role`, no RLS
    try:
        if seed.path.suffix == ".sql":
            conn = await session.connection()
            await conn.execute(seed.text.encode())
        else:
            ctx = SeedContext(
                db=session,
                kv=runtime.executor.services.kv_for(session),
                storage=runtime.executor.services.storage,
                logger=logging.getLogger(f"actions_server.seed.{seed.path.stem}"),
            )
            await _seed_function(seed, runtime.config.root)(ctx)
        conn = await session.connection()
        await conn.execute(
            "INSERT INTO actions_server.migrations (scope, name, checksum) VALUES (%s, %s, %s)",
            (SCOPE, seed.name, seed.checksum),
        )
    except SeedError:
        await session.finish(commit=False)
        raise
    except Exception as exc:
        await session.finish(commit=False)
        message = getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc)
        raise SeedError(f"seed {seed.path} failed: {type(exc).__name__}: {message}") from exc
    await session.finish(commit=True)


def _seed_function(seed: Seed, root: Path) -> Callable[[SeedContext], Awaitable[Any]]:
    import inspect

    if str(root) not in sys.path:  # a seed may import the app's modules, as handlers do
        sys.path.insert(0, str(root))
    name = f"_actions_server_seed_{seed.path.stem}_{seed.checksum[:8]}"
    spec = importlib.util.spec_from_file_location(name, seed.path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SeedError(f"seed {seed.path} does not import: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, "seed", None)
    if not inspect.iscoroutinefunction(function):
        raise SeedError(f"seed {seed.path} has no `async def seed(ctx)`")
    return function


async def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    return [
        tuple(row.values()) if isinstance(row, dict) else tuple(row)
        for row in await cursor.fetchall()
    ]
