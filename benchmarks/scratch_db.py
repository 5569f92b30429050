"""A throwaway database for one benchmark run, on the server DATABASE_URL names."""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql


def fresh_database(server_dsn: str, prefix: str) -> tuple[str, str]:
    """Create an empty database; its name and a DSN for it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, psycopg.conninfo.make_conninfo(server_dsn, dbname=name)


def drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
