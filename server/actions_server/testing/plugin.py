"""The pytest plugin of the test kit, registered by the `pytest11` entry point.

Fixtures, each documented in docs/testing.md:

- `actions_config`: the app's Config, from the ini option `actions_server_config`
  (default `config.yaml` beside pytest's rootdir) or `ACTIONS_SERVER_CONFIG`;
- `app`: the app on a fresh database per test (cloned from a migrated template),
  with `call`, `token`, `headers`, `sql`, `jobs`, `cron`, `mail` and `clock`;
- `client`: an aiohttp test client talking HTTP to the app on a real socket;
- `call`, `jobs`, `cron`, `mail`, `clock`, `token`: the same as `app.call`, ...,
  for tests that want only one of them;
- `storage_path`: the temporary folder the app's `ctx.storage` writes to.

Async fixtures are declared with `pytest_asyncio.fixture`, so they work in
pytest-asyncio's strict and auto modes alike; they run on the event loop scope
the project configures (`asyncio_default_fixture_loop_scope`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..config import Config, load_config
from .app import Cron, Jobs, Outbox, TestApp, open_test_app
from .clock import ManualClock
from .database import NoDatabase, cloned, migrated_template, test_server

CONFIG_ENV = "ACTIONS_SERVER_CONFIG"

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the kit needs it: pip install 'actions-server[testing]'
    HAVE_ASYNCIO = False
else:
    HAVE_ASYNCIO = True


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "actions_server_config",
        "the config file of the app under test, relative to the rootdir (default config.yaml)",
        default="config.yaml",
    )


@pytest.fixture(scope="session")
def actions_config(pytestconfig: pytest.Config) -> Config:
    """The Config of the app under test."""
    named = os.environ.get(CONFIG_ENV) or str(pytestconfig.getini("actions_server_config"))
    path = Path(named)
    if not path.is_absolute():
        path = Path(pytestconfig.rootpath) / path
    if not path.is_file():
        raise pytest.UsageError(
            f"actions_server.testing: no app config at {path}: set the ini option "
            f"actions_server_config or {CONFIG_ENV}"
        )
    return load_config(path)


@pytest.fixture(scope="session")
def actions_server_dsn() -> Iterator[str]:
    """A PostgreSQL server where the kit creates databases (ACTIONS_SERVER_TEST_DSN or
    the embedded one)."""
    try:
        with test_server() as dsn:
            yield dsn
    except NoDatabase as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def actions_template(actions_server_dsn: str, actions_config: Config) -> Iterator[str]:
    """The name of a database with the framework's tables and the app's migrations."""
    with migrated_template(actions_server_dsn, actions_config) as name:
        yield name


@pytest.fixture
def storage_path(tmp_path: Path) -> Path:
    """The folder the app's storage writes to in this test."""
    folder = tmp_path / "storage"
    folder.mkdir()
    return folder


if HAVE_ASYNCIO:

    @pytest_asyncio.fixture
    async def app(
        actions_server_dsn: str, actions_template: str, actions_config: Config, storage_path: Path
    ) -> AsyncIterator[TestApp]:
        """The app on a fresh database of its own."""
        with cloned(actions_server_dsn, actions_template) as dsn:
            async with open_test_app(actions_config, dsn, storage_path) as opened:
                yield opened

    @pytest_asyncio.fixture
    async def client(app: TestApp) -> AsyncIterator[Any]:
        """An aiohttp TestClient for the app, served on 127.0.0.1 by the server `serve` uses."""
        from aiohttp.test_utils import TestClient

        from .http import AppServer

        test_client: TestClient[Any, Any] = TestClient(AppServer(app.runtime))
        async with test_client:
            yield test_client


@pytest.fixture
def call(app: TestApp) -> Callable[..., Any]:
    """`await call(name, input, user=, roles=, permissions=, org=)`: `app.call`."""
    return app.call


@pytest.fixture
def jobs(app: TestApp) -> Jobs:
    """`await jobs.drain()`: run what is queued, return what ran."""
    return app.jobs


@pytest.fixture
def cron(app: TestApp) -> Cron:
    """`await cron.fire(name)`: run one tick of a cron action."""
    return app.cron


@pytest.fixture
def mail(app: TestApp) -> Outbox:
    """`await mail.messages()`: the outbox."""
    return app.mail


@pytest.fixture
def clock(app: TestApp) -> ManualClock:
    """`await clock.advance(seconds)`: TTLs, token expiry and rate windows move on."""
    return app.clock


@pytest.fixture
def token(app: TestApp) -> Callable[..., str]:
    """`token(user, roles=, permissions=, ttl=)`: a bearer token for the app."""
    return app.token
