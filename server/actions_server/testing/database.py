"""Databases for the test kit: a PostgreSQL server, a migrated template, a clone per test.

The server is `ACTIONS_SERVER_TEST_DSN` when set, else the embedded PostgreSQL
(the `embedded` extra) in a temporary folder. The template has the framework's
tables and the app's migrations; each test gets a copy made with
`CREATE DATABASE ... TEMPLATE`, which takes milliseconds, not a migration run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from ..config import Config
from ..db.migrate import apply_migrations

DSN_ENV = "ACTIONS_SERVER_TEST_DSN"


class NoDatabase(Exception):
    """Neither a DSN nor the embedded PostgreSQL: the message says what to do."""


@contextmanager
def test_server() -> Iterator[str]:
    """The DSN of a server where tests may create databases."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        yield dsn
        return
    try:
        import pgserver  # noqa: F401 - only whether it is there
    except ImportError:
        raise NoDatabase(
            f"no PostgreSQL for tests: set {DSN_ENV}=postgresql://... "
            "or install the embedded one (pip install 'actions-server[embedded]')"
        ) from None
    from ..db.embedded import start_embedded

    with tempfile.TemporaryDirectory(prefix="actions-server-test-") as folder:
        yield start_embedded(Path(folder))


def with_db(dsn: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


def create(server: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(statement)
    return with_db(server, name)


def drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def migrated_template(server: str, config: Config) -> Iterator[str]:
    """A database with the framework's tables and the app's migrations; its name."""
    name = f"as_kit_template_{uuid.uuid4().hex[:8]}"
    dsn = create(server, name)
    try:
        asyncio.run(apply_migrations(dsn, config.migrations, run_role=config.database.role))
        yield name
    finally:
        drop(server, name)


@contextmanager
def cloned(server: str, template: str) -> Iterator[str]:
    """A fresh copy of `template` for one test; its DSN."""
    name = f"as_kit_{uuid.uuid4().hex[:12]}"
    dsn = create(server, name, template)
    try:
        yield dsn
    finally:
        drop(server, name)
