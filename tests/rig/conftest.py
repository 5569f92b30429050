"""Fixtures of the scale-out rig: a PgBouncer (transaction pooling) for the session,
and a fresh database per test reached through it and directly."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from support.rig import PgBouncer, Urls


@pytest.fixture(scope="session")
def rig_folder() -> Iterator[Path]:
    """A folder outside pytest's root (mode 0700), which PgBouncer, run as `nobody`, can read."""
    path = Path(tempfile.mkdtemp(prefix="actions-server-rig-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(server_dsn: str, rig_folder: Path) -> Iterator[PgBouncer]:
    # A small pool: many clients share few server connections, so any state
    # left on one would show in another client's transactions.
    bouncer = PgBouncer(rig_folder / "pgbouncer", server_dsn, pool_size=3)
    bouncer.start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def urls(empty_database: str, pgbouncer: PgBouncer) -> Urls:
    name = psycopg.conninfo.conninfo_to_dict(empty_database)["dbname"]
    return Urls(pooled=pgbouncer.dsn(str(name)), direct=empty_database)
