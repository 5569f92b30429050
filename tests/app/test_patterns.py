"""The example app's patterns, tested with the test kit as an app author would.

Nothing here comes from tests/support: only the fixtures of
`actions_server.testing` (docs/testing.md), on the app of ./config.yaml.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from actions_server import ActionError

pytestmark = pytest.mark.integration

PASSWORD = "correct horse"


async def signup(call: Any, email: str, name: str = "Ann") -> str:
    """A user made through the app's own sign-up; their id."""
    answer = await call("auth.signup", {"email": email, "password": PASSWORD, "name": name})
    return str(answer["user"]["id"])


async def org_of(call: Any, user: str, name: str = "Acme") -> str:
    answer = await call("orgs.create", {"name": name}, user=user)
    return str(answer["org"]["id"])


# --- CRUD and pagination --------------------------------------------------------------


async def test_users_crud_and_pagination(client: Any, app: Any) -> None:
    admin = app.headers("admin-1", roles=["admin"])
    for n in range(5):
        created = await client.post(
            "/users", json={"email": f"u{n}@example.com", "name": f"U{n}"}, headers=admin
        )
        assert created.status == 201
    page = await client.get("/users?limit=2&offset=2", headers=admin)
    body = await page.json()
    assert (page.status, body["total"], body["limit"], body["offset"]) == (200, 5, 2, 2)
    assert len(body["users"]) == 2
    user_id = body["users"][0]["id"]
    changed = await client.patch(f"/users/{user_id}", json={"name": "Renamed"}, headers=admin)
    assert (await changed.json())["user"]["name"] == "Renamed"
    assert (await client.delete(f"/users/{user_id}", headers=admin)).status == 204
    assert (await client.get(f"/users/{user_id}", headers=admin)).status == 404


async def test_creating_a_user_needs_the_permission(call: Any) -> None:
    with pytest.raises(ActionError) as refused:
        await call("users.create", {"email": "x@example.com", "name": "X"}, user="someone")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")


# --- orgs, invitations, org-scoped queries ----------------------------------------------


async def test_an_invitation_is_mailed_and_accepted(app: Any, call: Any, jobs: Any) -> None:
    ann = await signup(call, "ann@example.com")
    org = await org_of(call, ann)
    await call("orgs.inviteMember", {"org_id": org, "email": "bo@example.com"}, user=ann, org=org)
    ran = await jobs.drain()
    assert {r.action for r in ran} >= {"workers.sendInvitationEmail", "actions_server.sendMail"}
    assert all(r.status == "done" for r in ran)
    invitation = next(m for m in await app.mail.messages() if m.to == ["bo@example.com"])
    assert "Acme" in invitation.subject
    code = next(word for word in (invitation.text or "").split() if len(word) >= 24)
    bo = await signup(call, "bo@example.com", "Bo")
    joined = await call("orgs.acceptInvitation", {"token": code}, user=bo)
    assert joined == {"org_id": org, "role": "org:member"}
    members = await call("orgs.members.list", {"org_id": org}, user=bo, org=org)
    assert [m["email"] for m in members["members"]] == ["ann@example.com", "bo@example.com"]


async def test_projects_are_kept_apart_by_org(call: Any) -> None:
    ann, bo = await signup(call, "ann@example.com"), await signup(call, "bo@example.com", "Bo")
    acme, globex = await org_of(call, ann, "Acme"), await org_of(call, bo, "Globex")
    await call("projects.create", {"name": "Apollo"}, user=ann, org=acme)
    await call("projects.create", {"name": "Gemini"}, user=bo, org=globex)
    listed = await call("projects.list", {}, user=ann, org=acme)
    assert [p["name"] for p in listed["projects"]] == ["Apollo"]
    with pytest.raises(ActionError) as refused:
        await call("projects.list", {}, user=ann, org=globex)  # not a member there
    assert refused.value.status == 403


# --- files -------------------------------------------------------------------------------


async def test_upload_then_download(client: Any, app: Any, call: Any) -> None:
    ann = await signup(call, "ann@example.com")
    org = await org_of(call, ann)
    headers = app.headers(ann, org=org)
    content = base64.b64encode(b"hello, files").decode()
    uploaded = await client.post(
        f"/orgs/{org}/files",
        json={"name": "hello.txt", "content_base64": content, "content_type": "text/plain"},
        headers=headers,
    )
    assert uploaded.status == 201, await uploaded.text()
    file_id = (await uploaded.json())["file"]["id"]
    assert any(app.storage_path.rglob(file_id))  # the kit's temporary storage folder
    served = await client.get(f"/orgs/{org}/files/{file_id}/content", headers=headers)
    assert (served.status, await served.read()) == (200, b"hello, files")


# --- background jobs and events ----------------------------------------------------------


async def test_a_report_is_built_by_a_job_and_announced_by_mail(
    call: Any, jobs: Any, mail: Any
) -> None:
    ann = await signup(call, "ann@example.com")
    org = await org_of(call, ann)
    await call("projects.create", {"name": "Apollo"}, user=ann, org=org)
    await call("billing.updateSubscription", {"org_id": org, "plan_key": "pro"}, user=ann, org=org)
    await jobs.drain()  # subscription.updated: the cached features are dropped
    queued = await call("reports.generate", {}, user=ann, org=org)
    assert queued["status"] == "queued"
    ran = [r.action for r in await jobs.drain()]
    # the job, the event it emitted, and the mail that event sent
    assert ran.index("workers.generateReport") < ran.index("notifications.onReportGenerated")
    report = await call("reports.get", {"id": queued["report_id"]}, user=ann, org=org)
    assert (report["report"]["status"], report["report"]["result"]) == ("done", {"projects": 1})
    assert any(m.template == "report_ready" for m in await mail.messages())


async def test_sign_up_emits_user_created_and_a_welcome_mail(
    call: Any, jobs: Any, mail: Any
) -> None:
    await signup(call, "ann@example.com")
    ran = await jobs.drain()
    assert [r.kind for r in ran if r.action == "notifications.onUserCreated"] == ["event"]
    [welcome] = [m for m in await mail.messages() if m.template == "welcome"]
    assert welcome.to == ["ann@example.com"]


# --- cron ---------------------------------------------------------------------------------


async def test_the_hourly_cron_records_job_counts(app: Any, cron: Any) -> None:
    ran = await cron.fire("system.hourlyMetrics")
    assert [(r.action, r.kind, r.status) for r in ran] == [("system.hourlyMetrics", "cron", "done")]
    assert len(await app.sql("SELECT * FROM metrics_hourly")) == 1


# --- KV cache, with time moved on instead of slept ----------------------------------------


async def test_plan_features_are_cached_until_their_ttl(app: Any, call: Any, clock: Any) -> None:
    ann = await signup(call, "ann@example.com")
    org = await org_of(call, ann)
    first = await call("orgs.getFeatures", {"org_id": org}, user=ann, org=org)
    await app.sql(
        "INSERT INTO plan_features (plan_key, feature_key) VALUES (%s, %s)", "free", "new-thing"
    )
    cached = await call("orgs.getFeatures", {"org_id": org}, user=ann, org=org)
    assert cached == first  # served from ctx.kv
    await clock.advance(301)  # past FEATURES_TTL_SECONDS
    fresh = await call("orgs.getFeatures", {"org_id": org}, user=ann, org=org)
    assert "new-thing" in fresh["features"]


async def test_a_token_expires_when_the_clock_says_so(client: Any, app: Any, clock: Any) -> None:
    token = app.token("admin-1", roles=["admin"], ttl=60)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/users", headers=headers)).status == 200
    await clock.advance(71)  # past the ttl and auth.jwt.leeway_seconds (10)
    expired = await client.get("/users", headers=headers)
    assert (expired.status, (await expired.json())["error"]["message"]) == (
        401,
        "the token has expired",
    )


async def test_the_login_rate_limit_resets_with_the_next_window(client: Any, clock: Any) -> None:
    wrong = {"email": "nobody@example.com", "password": "wrong password"}
    answers = [(await client.post("/auth/login", json=wrong)).status for _ in range(11)]
    assert answers[-1] == 429
    await clock.advance(60)
    assert (await client.post("/auth/login", json=wrong)).status == 401
