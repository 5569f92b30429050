"""Ticks across instances: maintenance that fails loses nothing (the hour is claimed
only with the pruning, in one transaction), and a late instance does not record as
missed a tick another instance ran."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actions_server.maintenance import MAINTENANCE_TICK
from actions_server.scheduler import Scheduler
from support.apps import Client, serving, write_app
from support.polling import query

pytestmark = pytest.mark.integration

MANIFEST = """
module: s
actions:
  - name: s.nightly
    handler: PKG.handlers:nightly
    run_as: system
    triggers: [{cron: "0 3 * * *"}]
"""

HANDLERS = """
async def nightly(input, ctx):
    return None
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"s.yaml": MANIFEST}, HANDLERS, config="app: s\n")
    async with serving(config, empty_database) as client:
        yield client


def scheduler(app: Client) -> Scheduler:
    runtime = app.runtime
    return Scheduler(runtime.config, runtime.registry, runtime.database)


HOUR = datetime.datetime(2026, 11, 30, 5, 17, tzinfo=datetime.UTC)


def ticks(dsn: str) -> list[dict]:
    return query(dsn, "SELECT action, fire_time FROM actions_server.cron_ticks ORDER BY action")


async def test_maintenance_that_fails_does_not_claim_its_hour(
    app: Client, empty_database: str
) -> None:
    old_job = (
        "INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts, status,"
        " finished_at) VALUES ('job', 'x', 'x', '{}', 1, 'done', now() - interval '60 days')"
    )
    query(empty_database, old_job)
    # Pruning the runs fails while their table is away: nothing of the hour commits.
    query(empty_database, "ALTER TABLE actions_server.runs RENAME TO runs_away")
    with pytest.raises(Exception, match="runs"):
        await scheduler(app)._enqueue(MAINTENANCE_TICK, HOUR)
    assert ticks(empty_database) == []
    assert len(query(empty_database, "SELECT id FROM actions_server.jobs")) == 1
    query(empty_database, "ALTER TABLE actions_server.runs_away RENAME TO runs")
    await scheduler(app)._enqueue(MAINTENANCE_TICK, HOUR)  # the retry (or another instance)
    assert ticks(empty_database) == [{"action": MAINTENANCE_TICK, "fire_time": HOUR}]
    assert query(empty_database, "SELECT id FROM actions_server.jobs") == []


async def test_a_late_instance_does_not_record_a_tick_another_ran(
    app: Client, empty_database: str
) -> None:
    fire = datetime.datetime(2026, 11, 30, 3, 0, tzinfo=datetime.UTC)
    on_time, late = scheduler(app), scheduler(app)
    await on_time._fire("s.nightly#0", fire)  # fires in time: the tick is taken
    await late._misfire("s.nightly#0", fire)  # was asleep past the grace
    assert late.misfires == 0
    assert query(empty_database, "SELECT * FROM actions_server.cron_misfires") == []
    missed = fire + datetime.timedelta(days=1)  # a tick nobody ran is recorded
    await late._misfire("s.nightly#0", missed)
    assert late.misfires == 1
    assert [
        r["fire_time"]
        for r in query(empty_database, "SELECT fire_time FROM actions_server.cron_misfires")
    ] == [missed]
