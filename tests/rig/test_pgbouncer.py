"""Every feature through PgBouncer in transaction pooling mode (`database.transaction_pooling`).

PgBouncer (Debian's, started by the fixture) pools three server connections for
all clients: consecutive transactions of one client land on different server
connections, and a server connection serves many clients in turn, so anything
that relied on session state would show here (prepared statements that do not
exist, another org's setting, a lock held by nobody). LISTEN goes straight to
PostgreSQL (`database.listen_url`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from actions_server.config import load_config
from actions_server.db.migrate import apply_migrations
from support.apps import serving, working
from support.fleet import write_rig_app
from support.polling import eventually, query
from support.rig import Urls

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def rig_config(tmp_path: Path, urls: Urls, **options: object):  # type: ignore[no-untyped-def]
    config = write_rig_app(tmp_path, **options)  # type: ignore[arg-type]
    return load_config(config, env=urls.env)


async def test_migrations_race_through_pgbouncer_and_each_runs_once(
    tmp_path: Path, urls: Urls
) -> None:
    config = rig_config(tmp_path, urls)
    applied = await asyncio.gather(
        *(apply_migrations(urls.pooled, config.migrations, run_role="rig_app") for _ in range(4))
    )
    everything = sorted(name for names in applied for name in names)
    assert len(everything) == len(set(everything))  # no file applied twice
    recorded = query(urls.direct, "SELECT scope, name FROM actions_server.migrations")
    assert sorted(f"{r['scope']}:{r['name']}" for r in recorded) == everything
    assert "app:001_rig.sql" in everything
    # No advisory lock is left held by anyone.
    assert (
        query(urls.direct, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'")[0]["n"]
        == 0
    )


async def test_orders_jobs_events_and_kv_through_pgbouncer_woken_by_listen(
    tmp_path: Path, urls: Urls
) -> None:
    # Polling every 30 s: a job done within a second or two was woken by NOTIFY,
    # which reached the worker on its direct LISTEN connection.
    config = rig_config(tmp_path, urls, poll_seconds=30, runs=True)
    await apply_migrations(urls.pooled, config.migrations, run_role="rig_app")
    async with serving(config, urls.pooled) as client, working(client, poll_interval_seconds=30):
        await asyncio.sleep(0.5)  # the worker is listening
        latencies = []
        for n in range(5):
            started = time.monotonic()
            status, body, _ = await client.post("/orders", json={"ref": f"r{n}"})
            assert status == 201, body
            done = await eventually(
                lambda n=n: (
                    query(urls.direct, "SELECT kind FROM effects WHERE ref = %s", f"r{n}").__len__()
                    == 2
                ),
                seconds=20,
            )
            assert done
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 5, latencies  # the target is "well under the poll interval"
        # Many at once, so the pool's connections interleave with the worker's.
        results = await asyncio.gather(
            *(client.post("/orders", json={"ref": f"bulk{n}"}) for n in range(40))
        )
        assert [status for status, _, _ in results] == [201] * 40
        assert await eventually(
            lambda: query(urls.direct, "SELECT count(*) AS n FROM effects")[0]["n"] == 2 * 45,
            seconds=30,
        )
        rows = query(
            urls.direct,
            "SELECT ref, kind, count(*) AS n FROM effects GROUP BY ref, kind HAVING count(*) > 1",
        )
        assert rows == []  # each job and each event delivery ran once
        status, body, _ = await client.post("/kv", json={"key": "k", "value": {"a": 1}})
        assert (status, body) == (200, {"value": {"a": 1}, "count": 1})
        status, body, _ = await client.get("/orders/r1")
        assert status == 200
        assert body["ref"] == "r1"
    # Every run was recorded (the recorder's own connection goes through PgBouncer too).
    recorded = query(
        urls.direct,
        "SELECT action, count(*) AS n FROM actions_server.runs GROUP BY 1 ORDER BY 1",
    )
    counts = {row["action"]: row["n"] for row in recorded}
    assert counts["rig.order"] == 45
    assert counts["rig.fulfil"] == counts["rig.notify"] == 45


@pytest.mark.parametrize("path", ["/notes", "/loose-notes"])
async def test_two_orgs_hammering_one_pool_never_see_each_others_rows(
    tmp_path: Path, urls: Urls, path: str
) -> None:
    """In a transaction (SET LOCAL) and without one (each statement wrapped)."""
    config = rig_config(tmp_path, urls)
    await apply_migrations(urls.pooled, config.migrations, run_role="rig_app")
    async with serving(config, urls.pooled) as client:

        async def write(org: str, n: int) -> dict[str, object]:
            status, body, _ = await client.post(path, json={"org": org, "body": f"{org}{n}"})
            assert status == 200, body
            return dict(body)

        answers = await asyncio.gather(
            *(write(org, n) for n in range(60) for org in ("acme", "globex"))
        )
    for answer in answers:
        org = answer["org"]
        assert set(answer["seen"]) <= {org}, answer  # its own rows, or none yet
        assert answer["user"] == "rig_app"
    counts = query(urls.direct, "SELECT org_id, count(*) AS n FROM notes GROUP BY 1 ORDER BY 1")
    assert counts == [{"org_id": "acme", "n": 60}, {"org_id": "globex", "n": 60}]
    # Nothing was left on PgBouncer's server connections for the next client.
    for _ in range(10):
        [row] = query(
            urls.pooled,
            "SELECT current_user AS who, coalesce(current_setting('app.org_id', true), '') AS org",
        )
        assert row == {"who": urls.user, "org": ""}


async def test_the_statement_timeout_holds_through_pgbouncer(tmp_path: Path, urls: Urls) -> None:
    config = rig_config(tmp_path, urls, statement_timeout=0.5)
    await apply_migrations(urls.pooled, config.migrations, run_role="rig_app")
    async with serving(config, urls.pooled) as client:
        status, body, _ = await client.get("/sleep?seconds=5")
        assert status == 503, body
        assert body["error"]["code"] == "database_timeout"
        status, body, _ = await client.get("/sleep?seconds=0.01")
        assert status == 200
