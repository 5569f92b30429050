"""Shared fixtures: a real PostgreSQL (from ACTIONS_SERVER_TEST_DSN or embedded),
a fresh database per test cloned from a migrated template, and the example app."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from actions_server.config import Config, load_config
from actions_server.db.migrate import apply_migrations
from support.apps import REPO, Client, serving
from support.clock import ManualClock
from support.postgres import TEST_DSN_ENV, ThrowawayPostgres, folder_for_postgres, services_required
from support.processes import free_port


def _with_db(dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN for a PostgreSQL server where tests may create databases."""
    dsn = os.environ.get(TEST_DSN_ENV)
    if dsn:
        try:
            psycopg.connect(dsn, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            pytest.fail(f"{TEST_DSN_ENV}={dsn} cannot be reached: {exc}")
        yield dsn
        return
    with folder_for_postgres() as folder:
        try:
            server = ThrowawayPostgres(folder)
        except ImportError:
            if services_required():
                pytest.fail(f"no PostgreSQL: set {TEST_DSN_ENV} or install the 'embedded' extra")
            pytest.skip(f"no PostgreSQL: set {TEST_DSN_ENV} or install the 'embedded' extra")
        yield server.dsn
        server.close()


@pytest.fixture(scope="session")
def example_config() -> Config:
    return load_config(REPO / "config.yaml", env={})


@pytest.fixture(scope="session")
def template_db(server_dsn: str, example_config: Config) -> Iterator[str]:
    """A database with the framework schema and the example app's migrations applied."""
    import asyncio

    name = f"as_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    asyncio.run(apply_migrations(_with_db(server_dsn, name), example_config.migrations))
    yield name
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def database(server_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh database for one test, cloned from the template; its DSN."""
    name = f"as_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield _with_db(server_dsn, name)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def empty_database(server_dsn: str) -> Iterator[str]:
    """A fresh, empty database (no migrations applied)."""
    name = f"as_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_db(server_dsn, name)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
async def example_client(
    example_config: Config, database: str, tmp_path: Path
) -> AsyncIterator[Client]:
    """The example app, called anonymously (its stored files under the test's tmp_path)."""
    storage = dataclasses.replace(example_config.storage, path=str(tmp_path / "storage"))
    config = dataclasses.replace(example_config, storage=storage)
    async with serving(config, database) as client:
        yield client


ADMIN_ID = "00000000-0000-4000-8000-00000000ad01"


@pytest.fixture
def admin_client(example_client: Client) -> Client:
    """The example app, called with a token of the `admin` role."""
    return example_client.as_(example_client.token(ADMIN_ID, roles=("admin",)))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that stands still at the start of an hour until the test moves it.

    (Not `clock`: that is the test kit's fixture, actions_server.testing.)"""
    return ManualClock()


REDIS_URL = os.environ.get("ACTIONS_SERVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis that answers (ACTIONS_SERVER_TEST_REDIS_URL, else the local one on db 0).

    Tests share it with whoever else uses it: each keeps to a prefix of its own.
    """
    import redis
    from redis.exceptions import ConnectionError as RedisDown

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except RedisDown as exc:
        if services_required():
            pytest.fail(f"Redis at {REDIS_URL} is not answering: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """host:port of an S3 API on loopback: moto's server, in a thread of this process."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()
