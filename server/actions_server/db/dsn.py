"""A database URL as messages may show it."""

from __future__ import annotations

import psycopg


def describe_dsn(dsn: str) -> str:
    """Host, port and database of a DSN, without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an invalid database URL"
    host = info.get("host") or "local socket"
    port = info.get("port") or 5432
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"
