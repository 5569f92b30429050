"""The example app's files, cached plan features, invitations and mail, end to end."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from support.apps import Client, working
from support.polling import eventually, query

pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 64  # every byte value, 16 KiB


async def signup(client: Client, email: str) -> tuple[Client, str]:
    status, body, _ = await client.post(
        "/auth/signup", json={"email": email, "password": "correct horse", "name": email[:4]}
    )
    assert status == 201, body
    return client.as_(body["token"]), body["user"]["id"]


async def org_of(client: Client, name: str) -> tuple[Client, str]:
    status, body, _ = await client.post("/orgs", json={"name": name})
    assert status == 201, body
    return client.as_(x_org_id=body["org"]["id"]), body["org"]["id"]


async def fetch(client: Client, url: str) -> tuple[int, bytes, str]:
    async with client.session.get(client.base + url) as response:
        return (
            response.status,
            await response.read(),
            response.headers.get("Content-Disposition", ""),
        )


async def test_upload_as_base64_and_as_multipart_then_download(example_client: Client) -> None:
    owner, _ = await signup(example_client, "owner@example.com")
    in_org, org = await org_of(owner, "Acme")

    status, body, _ = await in_org.post(
        f"/orgs/{org}/files",
        json={"name": "bytes.bin", "content_base64": base64.b64encode(PAYLOAD).decode()},
    )
    assert status == 201, body
    assert (body["file"]["size"], body["file"]["name"]) == (len(PAYLOAD), "bytes.bin")
    as_json = body["file"]["id"]

    form = aiohttp.FormData(quote_fields=False)  # as browsers send it: UTF-8 as is
    form.add_field("file", PAYLOAD[::-1], filename="résumé.pdf", content_type="application/pdf")
    status, body, _ = await in_org.post(f"/orgs/{org}/files", data=form)
    assert status == 201, body
    assert (body["file"]["content_type"], body["file"]["name"]) == ("application/pdf", "résumé.pdf")
    as_multipart = body["file"]["id"]

    for file_id, expected in ((as_json, PAYLOAD), (as_multipart, PAYLOAD[::-1])):
        status, body, _ = await in_org.get(f"/orgs/{org}/files/{file_id}/download")
        assert status == 200, body
        assert body["expires_in"] == 300
        status, content, disposition = await fetch(example_client, body["url"])
        assert (status, content) == (200, expected)
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in disposition

    # The signed URL is the credential: tampering with it is refused.
    tampered = body["url"].replace("signature=", "signature=0")
    assert tampered != body["url"]
    status, _, _ = await fetch(example_client, tampered)
    assert status == 403


async def test_another_orgs_file_is_not_found(example_client: Client, database: str) -> None:
    alice, _ = await signup(example_client, "alice@example.com")
    alice_org, alice_org_id = await org_of(alice, "Alice Inc")
    status, body, _ = await alice_org.post(
        f"/orgs/{alice_org_id}/files", json={"name": "a.txt", "content_base64": "aGk="}
    )
    secret_file = body["file"]["id"]

    mallory, _ = await signup(example_client, "mallory@example.com")
    mallory_org, mallory_org_id = await org_of(mallory, "Mallory LLC")
    # Her own org in the path and header, Alice's file id: RLS hides the row.
    status, body, _ = await mallory_org.get(f"/orgs/{mallory_org_id}/files/{secret_file}/download")
    assert (status, body["error"]["code"]) == (404, "not_found")
    # Alice's org in the path: not a member.
    status, body, _ = await mallory.as_(x_org_id=alice_org_id).get(
        f"/orgs/{alice_org_id}/files/{secret_file}/download"
    )
    assert status == 403
    assert query(database, "SELECT count(*) AS n FROM files") == [{"n": 1}]


async def test_a_bad_upload_is_a_400_and_stores_nothing(
    example_client: Client, database: str
) -> None:
    owner, _ = await signup(example_client, "owner@example.com")
    in_org, org = await org_of(owner, "Acme")
    status, body, _ = await in_org.post(
        f"/orgs/{org}/files", json={"name": "x", "content_base64": "not base64!"}
    )
    assert (status, body["error"]["message"]) == (400, "content_base64 is not valid base64")
    status, body, _ = await in_org.post(f"/orgs/{org}/files", json={"file": "x.txt"})
    assert status == 400
    status, body, _ = await in_org.post(f"/orgs/{org}/files", json={"content_base64": "aGk="})
    assert (status, body["error"]["code"]) == (400, "validation_failed")  # no name
    assert query(database, "SELECT count(*) AS n FROM files") == [{"n": 0}]


async def test_features_are_cached_until_the_plan_changes(
    example_client: Client, database: str
) -> None:
    owner, _ = await signup(example_client, "owner@example.com")
    in_org, org = await org_of(owner, "Acme")
    status, body, _ = await in_org.get(f"/orgs/{org}/features")
    assert (status, body["plan"]) == (200, "free")
    free_features = body["features"]
    [cached] = query(
        database, "SELECT value FROM actions_server.kv WHERE key = %s", f"orgs:{org}:features"
    )
    assert cached["value"]["plan"] == "free"

    # Behind the app's back: the cache still answers.
    query(database, "UPDATE subscriptions SET plan_key = 'pro' WHERE org_id = %s", org)
    assert (await in_org.get(f"/orgs/{org}/features"))[1]["features"] == free_features

    # Through the app: billing.onSubscriptionUpdated drops the cached entry.
    status, _, _ = await in_org.put(f"/orgs/{org}/subscription", json={"plan_key": "pro"})
    assert status == 200
    async with working(example_client):
        await eventually(
            lambda: query(database, "SELECT 1 FROM subscription_events WHERE org_id = %s", org)
        )
        cached_key = f"orgs:{org}:features"
        await eventually(
            lambda: (
                not query(database, "SELECT 1 FROM actions_server.kv WHERE key = %s", cached_key)
            )
        )
    status, body, _ = await in_org.get(f"/orgs/{org}/features")
    assert body["plan"] == "pro"
    assert set(body["features"]) > set(free_features)


async def test_signup_sends_a_welcome_mail_through_the_outbox(
    example_client: Client, database: str
) -> None:
    await signup(example_client, "new@example.com")
    async with working(example_client):
        sent = await eventually(lambda: query(database, "SELECT * FROM actions_server.mail_outbox"))
    [mail] = sent
    assert (mail["recipients"], mail["template"]) == (["new@example.com"], "welcome")
    assert mail["subject"] == "Welcome to Saas Example, new@"
    assert "new@example.com" in mail["text_body"]
    assert mail["sender"] == "Saas Example <no-reply@example.com>"


async def test_an_invitation_is_mailed_by_a_worker_and_accepted_once(
    example_client: Client, database: str
) -> None:
    owner, _ = await signup(example_client, "owner@example.com")
    in_org, org = await org_of(owner, "Acme <& Co>")
    guest, guest_id = await signup(example_client, "guest@example.com")

    status, body, _ = await in_org.post(
        f"/orgs/{org}/invitations", json={"email": "Guest@Example.com"}
    )
    assert status == 201, body
    assert (body["invitation"]["email"], body["invitation"]["role"]) == (
        "guest@example.com",
        "org:member",
    )
    status, body, _ = await in_org.post(
        f"/orgs/{org}/invitations", json={"email": "guest@example.com"}
    )
    assert status == 409  # one open invitation per address

    async with working(example_client):
        sent = await eventually(
            lambda: query(
                database,
                "SELECT * FROM actions_server.mail_outbox WHERE template = 'invitation'",
            )
        )
    [mail] = sent
    assert mail["recipients"] == ["guest@example.com"]
    assert mail["subject"] == "owne invited you to Acme <& Co>"
    assert "Acme &lt;&amp; Co&gt;" in mail["html_body"]  # autoescaped in HTML only
    token = mail["text_body"].rsplit(": ", 1)[1].strip()
    # Only the hash is stored.
    assert not query(database, "SELECT 1 FROM invitations WHERE token_sha256 = %s", token)

    status, body, _ = await owner.post("/orgs/invitations/accept", json={"token": token})
    assert status == 404  # not the invited address
    status, body, _ = await guest.post("/orgs/invitations/accept", json={"token": token})
    assert (status, body) == (200, {"org_id": org, "role": "org:member"})
    status, _, _ = await guest.post("/orgs/invitations/accept", json={"token": token})
    assert status == 404  # used
    members = query(database, "SELECT role FROM org_memberships WHERE user_id = %s", guest_id)
    assert members == [{"role": "org:member"}]
