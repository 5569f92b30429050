"""Real PostgreSQL servers for tests.

`ACTIONS_SERVER_TEST_DSN` names a server to use; without it an embedded one
(pgserver) is started for the session. `ThrowawayPostgres` is a private server
a test may stop and start again, to see what the app does while it is down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEST_DSN_ENV = "ACTIONS_SERVER_TEST_DSN"
REQUIRE_ENV = "ACTIONS_SERVER_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false")


def _runtime_dir() -> None:
    # pgserver's lock file lives in XDG_RUNTIME_DIR, unset in CI containers.
    if "XDG_RUNTIME_DIR" not in os.environ:
        path = Path(tempfile.gettempdir()) / f"actions-server-tests-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)


@contextmanager
def folder_for_postgres() -> Iterator[Path]:
    """A fresh folder for a PostgreSQL data directory, outside pytest's temporary root.

    Run as root, pgserver starts PostgreSQL as the user `pgserver` and opens the data
    directory's parent folders to it. pytest sets its root (/tmp/pytest-of-root) back
    to mode 0700 whenever any pytest session starts on the machine, so a server kept
    under it can no longer be restarted or stopped ("Permission denied") once another
    session has begun. Nothing resets a folder of our own.
    """
    path = Path(tempfile.mkdtemp(prefix="actions-server-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class ThrowawayPostgres:
    """A private PostgreSQL 16 (pgserver's binaries) that can be stopped and restarted.

    Give it a folder from `folder_for_postgres`, not from pytest's tmp_path.
    """

    def __init__(self, folder: Path) -> None:
        _runtime_dir()
        import pgserver.postgres_server as ps

        folder.mkdir(parents=True, exist_ok=True)
        self._server: Any = ps.get_server(folder / "pgdata", cleanup_mode="delete")
        info = self._server.get_postmaster_info()
        self.pgdata: Path = self._server.pgdata
        self.socket_dir: Path = info.socket_dir
        self.dsn: str = self._server.get_uri()
        self._listen = ["-o", '-h ""']

    def listen_on_tcp(self, port: int, max_connections: int = 100) -> str:
        """Restart listening on 127.0.0.1:`port` too (for PgBouncer); the new DSN."""
        self.stop()
        self._listen = ["-o", f"-h 127.0.0.1 -p {port} -c max_connections={max_connections}"]
        self.start()
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self.dsn

    def pid(self) -> int:
        """The postmaster's process id."""
        return int((self.pgdata / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        from pgserver import _commands

        _commands.pg_ctl(
            ["-w", "-m", "immediate", "stop"], pgdata=self.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        from pgserver import _commands

        _commands.pg_ctl(
            [
                "-w",
                *self._listen,
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.pgdata / "log"),
                "start",
            ],
            pgdata=self.pgdata,
            user=self._server.system_user,
            timeout=30,
        )

    def close(self) -> None:
        self._server.cleanup()
