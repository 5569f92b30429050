"""Cancelling a running job, from the dashboard or the CLI: the worker holding it
cancels its run at the handler's next await and marks it cancelled, not retried.
The NOTIFY wakes the worker at once; the heartbeat catches a missed one; a job whose
worker died is cancelled when its lease is reaped."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from actions_server.cli import main
from support.apps import Client, serving, working, write_app
from support.polling import eventually, query
from support.tokens import SECRET, claims, hs256

pytestmark = pytest.mark.integration

MANIFEST = """
module: c
actions:
  - name: c.push
    handler: PKG.handlers:push
    triggers: [{api: POST /push}]
  - name: c.long
    handler: PKG.handlers:long
    transaction: false
    retry: {attempts: 5}
    triggers: [{event: job.long}]
"""

HANDLERS = """
import asyncio

async def push(input, ctx):
    return {"job_id": await ctx.queue.push("long", {})}

async def long(input, ctx):
    await ctx.db.raw("INSERT INTO marks VALUES ('started')")  # commits at once: a signal
    try:
        for _ in range(1200):
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        await ctx.db.raw("INSERT INTO marks VALUES ('saw the cancel')")
        raise
"""

CONFIG = f"""
app: c
database: {{url: "${{DATABASE_URL:-embedded}}"}}
auth: {{jwt: {{secret: {SECRET}}}, roles: {{ops: [dashboard:view]}}}}
queue: {{lease_seconds: 1.5}}
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"c.yaml": MANIFEST},
        HANDLERS,
        config=CONFIG,
        migrations={"001.sql": "CREATE TABLE marks (what text);"},
    )
    async with serving(config, empty_database) as client:
        yield client


def marks(dsn: str) -> list[str]:
    return [r["what"] for r in query(dsn, "SELECT what FROM marks")]


def job(dsn: str, job_id: int) -> dict:
    [row] = query(
        dsn, "SELECT status, attempts, last_error FROM actions_server.jobs WHERE id = %s", job_id
    )
    return row


async def started_job(app: Client, dsn: str) -> int:
    status, body, _ = await app.post("/push")
    assert status == 200, body
    assert await eventually(lambda: marks(dsn) == ["started"])
    return int(body["job_id"])


async def test_the_dashboard_cancels_a_running_job(app: Client, empty_database: str) -> None:
    ops = app.as_(hs256(claims(sub="op-1", roles=["ops"])))
    async with working(app):
        job_id = await started_job(app, empty_database)
        status, body, _ = await ops.get("/_dashboard/jobs?status=running")
        assert f"/jobs/{job_id}/cancel" in body
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
        assert csrf is not None
        status, _, response = await ops.post(
            f"/_dashboard/jobs/{job_id}/cancel",
            data={"csrf": csrf[1], "back": "running"},
            allow_redirects=False,
        )
        assert status == 303
        assert "asked+to+cancel" in response.headers["Location"]
        assert await eventually(lambda: job(empty_database, job_id)["status"] == "cancelled")
    row = job(empty_database, job_id)
    assert (row["attempts"], row["last_error"]["code"]) == (1, "cancelled")
    assert marks(empty_database) == ["started", "saw the cancel"]


async def test_the_cli_cancels_a_running_job(app: Client, empty_database: str) -> None:
    config = str(app.runtime.config.file)
    async with working(app):
        job_id = await started_job(app, empty_database)
        result = await asyncio.to_thread(
            CliRunner().invoke,
            main,
            ["jobs", "cancel", config, str(job_id)],
            env={"DATABASE_URL": empty_database},
        )
        assert result.exit_code == 0, result.output
        assert f"asked the worker running job {job_id} to cancel it" in result.output
        assert await eventually(lambda: job(empty_database, job_id)["status"] == "cancelled")
    again = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["jobs", config, "cancel", str(job_id)],  # the order of before still works
        env={"DATABASE_URL": empty_database},
    )
    assert again.exit_code == 1
    assert "is not queued, running or dead" in again.output


async def test_a_missed_notification_is_caught_by_the_heartbeat(
    app: Client, empty_database: str
) -> None:
    async with working(app):
        job_id = await started_job(app, empty_database)
        # As if the NOTIFY had been lost: only the flag is set.
        query(
            empty_database,
            "UPDATE actions_server.jobs SET cancel_requested = true WHERE id = %s",
            job_id,
        )
        assert await eventually(lambda: job(empty_database, job_id)["status"] == "cancelled")


async def test_a_cancel_for_a_dead_workers_job_is_honoured_when_reaped(
    app: Client, empty_database: str
) -> None:
    status, body, _ = await app.post("/push")
    assert status == 200
    job_id = body["job_id"]
    query(
        empty_database,
        "UPDATE actions_server.jobs SET status = 'running', attempts = 1, locked_by = 'gone',"
        " locked_until = now() - interval '1 minute', cancel_requested = true WHERE id = %s",
        job_id,
    )
    async with working(app):
        assert await eventually(lambda: job(empty_database, job_id)["status"] == "cancelled")
    assert marks(empty_database) == []  # never run again
