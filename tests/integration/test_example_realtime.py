"""The example app publishes new projects on `org:{org_id}:projects`."""

from __future__ import annotations

import pytest

from support.apps import Client
from support.realtime import join, receive, silent

pytestmark = pytest.mark.integration


async def user(admin: Client, name: str) -> str:
    status, body, _ = await admin.post(
        "/users", json={"email": f"{name}@example.com", "name": name}
    )
    assert status == 201, body
    return str(body["user"]["id"])


async def test_members_hear_of_new_projects_of_their_org_only(admin_client: Client) -> None:
    ann, bob = await user(admin_client, "ann"), await user(admin_client, "bob")
    status, body, _ = await admin_client.as_(admin_client.token(ann)).post(
        "/orgs", json={"name": "A"}
    )
    assert status == 201, body
    org = body["org"]["id"]
    url = admin_client.base + "/realtime"
    session = admin_client.session
    async with (
        session.ws_connect(url, params={"token": admin_client.token(ann)}) as ann_ws,
        session.ws_connect(url, params={"token": admin_client.token(bob)}) as bob_ws,
    ):
        assert (await join(ann_ws, f"org:{org}:projects"))["status"] == "ok"
        assert list((await receive(ann_ws, "presence_state"))["payload"]) == [ann]
        refused = await join(bob_ws, f"org:{org}:projects")
        assert (refused["status"], refused["error"]["code"]) == ("error", "forbidden")
        status, body, _ = await admin_client.as_(admin_client.token(ann), x_org_id=org).post(
            "/projects", json={"name": "Apollo"}
        )
        assert status == 201, body
        message = await receive(ann_ws, "message")
        assert message["event"] == "project.created"
        assert message["payload"]["project"]["name"] == "Apollo"
        assert message["payload"]["project"]["org_id"] == org
        await silent(bob_ws, 0.5)
