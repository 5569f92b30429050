"""The example app's users CRUD over real HTTP against a real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from support.apps import Client

pytestmark = pytest.mark.integration


async def create(client: Client, email: str, name: str = "Ann") -> dict:
    status, body, _ = await client.post("/users", json={"email": email, "name": name})
    assert status == 201, body
    return body["user"]


async def test_create_returns_201_and_the_stored_user(admin_client: Client) -> None:
    status, body, response = await admin_client.post(
        "/users", json={"email": "Ann@Example.com", "name": "Ann"}
    )
    assert status == 201
    user = body["user"]
    assert user["email"] == "ann@example.com"
    assert user["name"] == "Ann"
    uuid.UUID(user["id"])
    assert user["created_at"].endswith("+00:00")
    assert len(response.headers["x-trace-id"]) == 32


async def test_get_by_id_and_404_when_missing(admin_client: Client) -> None:
    user = await create(admin_client, "get@example.com")
    status, body, _ = await admin_client.get(f"/users/{user['id']}")
    assert (status, body["user"]) == (200, user)

    missing = str(uuid.uuid4())
    status, body, response = await admin_client.get(f"/users/{missing}")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert missing in body["error"]["message"]
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]


async def test_trailing_slash_finds_the_same_route(admin_client: Client) -> None:
    user = await create(admin_client, "slash@example.com")
    status, body, _ = await admin_client.get(f"/users/{user['id']}/")
    assert status == 200
    assert body["user"]["id"] == user["id"]


async def test_update_is_partial(admin_client: Client) -> None:
    user = await create(admin_client, "upd@example.com", "Before")
    status, body, _ = await admin_client.patch(f"/users/{user['id']}", json={"name": "After"})
    assert status == 200
    assert body["user"]["name"] == "After"
    assert body["user"]["email"] == "upd@example.com"
    assert body["user"]["updated_at"] >= user["updated_at"]


async def test_update_needs_a_field_and_404s_for_unknown_ids(admin_client: Client) -> None:
    user = await create(admin_client, "upd2@example.com")
    status, body, _ = await admin_client.patch(f"/users/{user['id']}", json={})
    assert status == 400
    assert body["error"]["code"] == "validation_failed"
    status, body, _ = await admin_client.patch(f"/users/{uuid.uuid4()}", json={"name": "x"})
    assert status == 404


async def test_path_parameter_wins_over_a_body_field(admin_client: Client) -> None:
    first = await create(admin_client, "first@example.com")
    second = await create(admin_client, "second@example.com")
    status, body, _ = await admin_client.patch(
        f"/users/{first['id']}", json={"id": second["id"], "name": "Renamed"}
    )
    assert status == 200
    assert body["user"]["id"] == first["id"]
    _, body, _ = await admin_client.get(f"/users/{second['id']}")
    assert body["user"]["name"] == "Ann"


async def test_delete_answers_204_then_the_user_is_gone(admin_client: Client) -> None:
    user = await create(admin_client, "del@example.com")
    status, body, response = await admin_client.delete(f"/users/{user['id']}")
    assert (status, body) == (204, None)
    assert response.headers["x-trace-id"]
    status, _, _ = await admin_client.get(f"/users/{user['id']}")
    assert status == 404
    status, _, _ = await admin_client.delete(f"/users/{user['id']}")
    assert status == 404


async def test_duplicate_email_is_409_naming_the_field(admin_client: Client) -> None:
    await create(admin_client, "dup@example.com")
    status, body, _ = await admin_client.post(
        "/users", json={"email": "DUP@example.com", "name": "B"}
    )
    assert status == 409
    assert body["error"]["code"] == "conflict"
    assert body["error"]["details"] == [{"path": "/email", "message": "already exists"}]


async def test_list_pages_with_limit_offset_and_total(admin_client: Client) -> None:
    for i in range(5):
        await create(admin_client, f"u{i}@example.com", f"User {i}")
    status, body, _ = await admin_client.get("/users?limit=2&offset=1")
    assert status == 200
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 1)
    assert [u["name"] for u in body["users"]] == ["User 3", "User 2"]

    status, body, _ = await admin_client.get("/users")
    assert (body["limit"], body["offset"], len(body["users"])) == (20, 0, 5)


@pytest.mark.parametrize(
    ("query", "path", "message"),
    [
        ("limit=0", "/limit", "less than the minimum of 1"),
        ("limit=101", "/limit", "greater than the maximum of 100"),
        ("limit=ten", "/limit", 'is not of type "integer"'),
        ("offset=-1", "/offset", "less than the minimum of 0"),
        ("offset=10001", "/offset", "greater than the maximum of 10000"),
        ("limit=1.5", "/limit", 'is not of type "integer"'),
    ],
)
async def test_list_rejects_bad_paging(
    admin_client: Client, query: str, path: str, message: str
) -> None:
    status, body, _ = await admin_client.get(f"/users?{query}")
    assert status == 400
    [detail] = body["error"]["details"]
    assert detail["path"] == path
    assert message in detail["message"]


async def test_create_lists_every_invalid_field(admin_client: Client) -> None:
    status, body, _ = await admin_client.post("/users", json={"email": "not-an-email", "extra": 1})
    assert status == 400
    assert body["error"]["code"] == "validation_failed"
    assert {(d["path"], d["message"]) for d in body["error"]["details"]} == {
        ("/email", "is not a valid email"),
        ("/name", "is required"),
        ("/extra", "is not an allowed property"),
    }


async def test_an_invalid_uuid_in_the_path_is_a_400(admin_client: Client) -> None:
    status, body, _ = await admin_client.get("/users/not-a-uuid")
    assert status == 400
    assert body["error"]["details"] == [{"path": "/id", "message": "is not a valid uuid"}]
