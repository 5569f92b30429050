"""A claim costs what it takes, not what the table holds: however many jobs it asks
for, PostgreSQL finds them through the ready index and updates them by primary key,
never by a sequential scan of the jobs table."""

from __future__ import annotations

import pytest

from actions_server.queue import store
from actions_server.queue.store import Q
from support.polling import connect

pytestmark = pytest.mark.integration

QUEUED = 20_000


async def test_a_large_claim_on_a_large_queue_reads_no_more_than_it_claims(database: str) -> None:
    async with await connect(database) as conn:
        await conn.execute(
            "INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts) "
            "SELECT 'job', 'step', 'p.step', jsonb_build_object('n', n), 3 "
            "FROM generate_series(1, %s) AS n",
            (QUEUED,),
        )
        await conn.execute("ANALYZE actions_server.jobs")
        params = {"limit": 500, "worker": "w", "lease": 30.0}
        cursor = await conn.execute("EXPLAIN " + Q["claim"], params)
        plan = "\n".join(row["QUERY PLAN"] for row in await cursor.fetchall())
        assert "Seq Scan" not in plan, plan
        assert "jobs_pkey" in plan, plan

        claimed = await store.claim(conn, "w", 500, 30.0)
    assert [row["payload"]["n"] for row in claimed] == list(range(1, 501))
