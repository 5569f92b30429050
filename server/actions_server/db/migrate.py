"""Migrations: actions-server's own schema, then the app's `migrations/*.sql`.

Each file is applied once, in file-name order, in its own transaction, and
recorded in `actions_server.migrations` with a SHA-256 of its text. A file
changed after it was applied is an error (write a new migration instead).
Instances starting together serialise on an advisory lock, so each file runs
exactly once however many processes start. The lock is transaction-level
(`pg_advisory_xact_lock`), taken again by each migration's transaction, which
checks once more whether another process applied it meanwhile: nothing depends
on the session, so migrations run through a transaction pooler (PgBouncer) too.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ..errors import ActionsServerError, DatabaseUnavailable
from .dsn import describe_dsn

log = logging.getLogger("actions_server.migrate")

FRAMEWORK_SQL = Path(__file__).parent / "sql"
# pg_advisory_lock key: the first 8 bytes of sha256("actions_server.migrate").
_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"actions_server.migrate").digest()[:8], "big", signed=True
)

_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS actions_server;
CREATE TABLE IF NOT EXISTS actions_server.migrations (
    scope text NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name)
);
"""


class MigrationError(ActionsServerError):
    """A migration failed or was edited after it was applied."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    scope: str
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path | None, scope: str) -> list[Migration]:
    if folder is None or not folder.is_dir():
        return []
    return [
        Migration(scope=scope, name=p.name, path=p, sql=p.read_text(encoding="utf-8"))
        for p in sorted(folder.glob("*.sql"))
    ]


def _line_of(sql: str, position: int | None) -> str:
    if not position:
        return ""
    return f" (line {sql.count(chr(10), 0, position - 1) + 1})"


async def apply_migrations(
    dsn: str, app_folder: Path | None, *, run_role: str | None = None
) -> list[str]:
    """Bring the framework schema and the app's migrations up to date; the names applied.

    With `run_role` (`database.role`), that role is granted what runs need on the
    framework's own tables, since runs write jobs and events in their transaction.
    """
    pending = discover(FRAMEWORK_SQL, "framework") + discover(app_folder, "app")
    applied_now: list[str] = []
    try:
        # No server-side prepared statements: the URL may be a transaction pooler.
        connection = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=10, prepare_threshold=None
        )
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise DatabaseUnavailable(
            f"cannot connect to the database ({describe_dsn(dsn)}): {reason}"
        ) from None
    async with connection as conn:
        async with conn.transaction():
            await conn.execute(_LOCK, (_LOCK_KEY,))
            await conn.execute(_BOOTSTRAP)
        cursor = await conn.execute("SELECT scope, name, checksum FROM actions_server.migrations")
        done = {(scope, name): checksum for scope, name, checksum in await cursor.fetchall()}
        for migration in pending:
            recorded = done.get((migration.scope, migration.name))
            if recorded is not None:
                _check_unchanged(migration, recorded)
                continue
            if await _apply(conn, migration):
                applied_now.append(f"{migration.scope}:{migration.name}")
                if migration.scope == "app":
                    log.info("applied migration %s", migration.name)
        if run_role:
            async with conn.transaction():
                await conn.execute(_LOCK, (_LOCK_KEY,))
                await _grant_framework_tables(conn, run_role)
    return applied_now


def _check_unchanged(migration: Migration, recorded: str) -> None:
    if recorded != migration.checksum:
        raise MigrationError(
            f"migration {migration.path} was changed after it was applied "
            "(its checksum differs); put the change in a new migration file"
        )


async def _apply(conn: psycopg.AsyncConnection[tuple[object, ...]], migration: Migration) -> bool:
    """Apply `migration` unless another process did since we looked; whether we did."""
    try:
        async with conn.transaction():
            await conn.execute(_LOCK, (_LOCK_KEY,))
            cursor = await conn.execute(
                "SELECT checksum FROM actions_server.migrations WHERE scope = %s AND name = %s",
                (migration.scope, migration.name),
            )
            row = await cursor.fetchone()
            if row is not None:
                _check_unchanged(migration, str(row[0]))
                return False
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO actions_server.migrations (scope, name, checksum) VALUES (%s, %s, %s)",
                (migration.scope, migration.name, migration.checksum),
            )
        return True
    except psycopg.Error as exc:
        where = _line_of(migration.sql, _position(exc))
        message = exc.diag.message_primary or str(exc)
        raise MigrationError(f"migration {migration.path}{where} failed: {message}") from None


def _position(exc: psycopg.Error) -> int | None:
    raw = exc.diag.statement_position
    return int(raw) if raw and raw.isdigit() else None


async def _grant_framework_tables(
    conn: psycopg.AsyncConnection[tuple[object, ...]], role: str
) -> None:
    name = sql.Identifier(role)
    for statement in (
        "GRANT USAGE ON SCHEMA actions_server TO {}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA actions_server TO {}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA actions_server TO {}",
    ):
        try:
            await conn.execute(sql.SQL(statement).format(name))
        except psycopg.errors.UndefinedObject:
            raise MigrationError(
                f"database.role {role!r} does not exist; create it in a migration "
                "(CREATE ROLE ... NOLOGIN) and grant it to the user the app connects as"
            ) from None
