"""A test kit for app authors: `pytest` fixtures for an actions-server app.

Installed with the package and loaded by pytest through the `pytest11` entry
point (`actions_server.testing.plugin`); docs/testing.md shows it in use:

    async def test_greet(call):
        assert await call("hello.greet", {"name": "Ann"}) == {"message": "Hello, Ann!"}

The fixtures open the app as `serve` does, on a fresh database per test, with
mail to the outbox, storage in a temporary folder and a clock the test moves.
"""

from .app import Cron, Jobs, Mail, Outbox, Ran, TestApp, open_test_app
from .clock import ManualClock

__all__ = ["Cron", "Jobs", "Mail", "ManualClock", "Outbox", "Ran", "TestApp", "open_test_app"]
