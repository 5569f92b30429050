"""The example app's background work: events, jobs and cron actions end to end."""

from __future__ import annotations

import pytest

from support.apps import Client, working
from support.polling import eventually, query

pytestmark = pytest.mark.integration


async def test_a_report_is_generated_in_the_background(
    example_client: Client, database: str
) -> None:
    status, body, _ = await example_client.post(
        "/auth/signup",
        json={"email": "boss@example.com", "password": "correct horse", "name": "Boss"},
    )
    boss = example_client.as_(body["token"])
    status, body, _ = await boss.post("/orgs", json={"name": "Acme"})
    org = body["org"]["id"]
    in_org = boss.as_(x_org_id=org)
    status, body, _ = await in_org.post("/reports")
    assert (status, body["error"]["code"]) == (403, "upgrade_required")  # free plan
    status, body, _ = await in_org.put(f"/orgs/{org}/subscription", json={"plan_key": "pro"})
    assert status == 200, body
    await in_org.post("/projects", json={"name": "One"})
    status, body, _ = await in_org.post("/reports")
    assert status == 202
    assert body["status"] == "queued"
    report_id = body["report_id"]
    async with working(example_client):
        done = await eventually(
            lambda: query(database, "SELECT status, result FROM reports WHERE status = 'done'")
        )
        mails = await eventually(
            lambda: query(
                database,
                "SELECT template FROM actions_server.mail_outbox WHERE template = 'report_ready'",
            )
        )
        changes = await eventually(
            lambda: query(database, "SELECT plan_key FROM subscription_events")
        )
    assert done == [{"status": "done", "result": {"projects": 1}}]
    assert mails == [{"template": "report_ready"}]
    assert changes == [{"plan_key": "pro"}]
    status, body, _ = await in_org.get(f"/reports/{report_id}")
    assert (status, body["report"]["status"]) == (200, "done")


async def test_cron_actions_run_as_the_system(example_client: Client, database: str) -> None:
    from actions_server.auth import SYSTEM
    from actions_server.guards import Caller

    executor = example_client.runtime.executor
    registry = example_client.runtime.registry
    for name in ("system.hourlyMetrics", "system.dailyCleanup"):
        result = await executor.run(
            registry.actions[name], {}, trigger="cron", caller=Caller(principal=SYSTEM)
        )
        assert result.output is not None
    assert len(query(database, "SELECT * FROM metrics_hourly")) == 1
