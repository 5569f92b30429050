"""The embedded PostgreSQL behind `database.url: embedded` (the `embedded` extra).

pgserver ships PostgreSQL 16 binaries in a wheel and runs a private server on
a Unix socket with its data under `.actions-server/pgdata` next to the config;
nothing needs installing and no port is taken. The server is shared by every
process that asks for the same folder and stopped when the last one exits.
Development only: production sets `DATABASE_URL`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import ActionsServerError

log = logging.getLogger("actions_server.db")

INSTALL_HINT = (
    "database.url is 'embedded', which needs the embedded PostgreSQL: "
    "install it with `pip install 'actions-server[embedded]'`, "
    "or set DATABASE_URL to a PostgreSQL URL (e.g. postgresql://user@127.0.0.1:5432/app)"
)


class EmbeddedUnavailable(ActionsServerError):
    """The embedded database cannot be started; the message says what to do."""


def start_embedded(state_dir: Path) -> str:
    """Start (or join) the embedded server for `state_dir`; return its DSN."""
    # pgserver asks platformdirs, when imported, for a runtime dir for its lock
    # file; containers often have no XDG_RUNTIME_DIR, so give it one of ours.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir(state_dir)))
    try:
        import pgserver
    except ImportError:
        raise EmbeddedUnavailable(INSTALL_HINT) from None
    pgdata = state_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.postgres_server.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise EmbeddedUnavailable(
            f"cannot start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from None
    dsn: str = server.get_uri()
    log.info("embedded PostgreSQL running, data in %s", pgdata)
    return dsn


def _runtime_dir(state_dir: Path) -> Path:
    path = state_dir / "run"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
