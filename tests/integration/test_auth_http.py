"""Authentication, guards and tenant isolation, through real HTTP on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from actions_server.clock import SYSTEM_CLOCK, Clock
from support.apps import Client, serving, write_app
from support.clock import ManualClock
from support.tokens import SECRET, claims, hmac_signed_with, hs256, rs256, rsa_keys, unsigned

pytestmark = pytest.mark.integration


def error(body: dict) -> tuple[str, str]:
    return body["error"]["code"], body["error"]["message"]


# --- credentials on the example app ------------------------------------------------------


async def test_missing_token_is_401_unauthenticated(example_client: Client) -> None:
    status, body, response = await example_client.get("/users")
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer a b", "Basic dXNlcjpwYXNz"])
async def test_malformed_authorization_header_is_401_invalid_token(
    example_client: Client, header: str
) -> None:
    status, body, _ = await example_client.get("/users", headers={"Authorization": header})
    assert (status, error(body)) == (
        401,
        ("invalid_token", "the Authorization header must be 'Bearer <token>'"),
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda key: hs256(claims(), secret="another-secret-that-is-long-enough-0123456"),
            "the token is invalid",
        ),
        (
            lambda key: hs256(claims(exp=int(time.time()) - 120), secret=key),
            "the token has expired",
        ),
        (
            lambda key: hs256(claims(nbf=int(time.time()) + 120), secret=key),
            "the token is not valid yet",
        ),
        (lambda key: unsigned(claims(roles=["admin"])), "the token's algorithm is not accepted"),
        (lambda key: hs256(claims(), secret=key)[:-4] + "AAAA", "the token is invalid"),
        (lambda key: "garbage", "the token is invalid"),
    ],
)
async def test_refused_tokens_are_401_invalid_token(
    example_client: Client, make, message: str
) -> None:
    token = make(example_client.runtime.config.auth.jwt.secret)
    status, body, response = await example_client.as_(token).get("/users")
    assert (status, error(body)) == (401, ("invalid_token", message))
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_refused_token_does_not_block_a_public_action(example_client: Client) -> None:
    status, body, _ = await example_client.as_("garbage").post(
        "/auth/login", json={"email": "a@b.co", "password": "x"}
    )
    assert (status, body["error"]["code"]) == (401, "invalid_credentials")


async def test_missing_permission_is_403_naming_it(
    admin_client: Client, example_client: Client
) -> None:
    user = example_client.as_(example_client.token("00000000-0000-4000-8000-000000000002"))
    status, body, _ = await user.post("/users", json={"email": "x@example.com", "name": "X"})
    assert (status, error(body)) == (403, ("forbidden", "missing permission 'users:create'"))
    status, body, _ = await user.get("/users")
    assert (status, error(body)) == (403, ("forbidden", "missing permission 'users:read'"))


async def test_users_see_and_change_only_themselves(
    admin_client: Client, example_client: Client
) -> None:
    ann_id = await make_user(admin_client, "ann@example.com")
    bob_id = await make_user(admin_client, "bob@example.com")
    bob = example_client.as_(example_client.token(bob_id))
    status, body, _ = await bob.patch(f"/users/{ann_id}", json={"email": "pwned@example.com"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body, _ = await bob.get(f"/users/{ann_id}")
    assert status == 403
    status, body, _ = await bob.patch(f"/users/{bob_id}", json={"name": "Bobby"})
    assert (status, body["user"]["name"]) == (200, "Bobby")
    status, body, _ = await admin_client.patch(f"/users/{ann_id}", json={"name": "Annie"})
    assert status == 200


async def test_signup_login_and_me(example_client: Client) -> None:
    signup = {"email": "Ann@Example.com", "password": "correct horse battery", "name": "Ann"}
    status, body, _ = await example_client.post("/auth/signup", json=signup)
    assert status == 201, body
    assert set(body["user"]) == {"id", "email", "name", "created_at", "updated_at"}
    assert "correct horse" not in str(body)
    status, body, _ = await example_client.post(
        "/auth/login", json={"email": "ann@example.com", "password": "wrong password"}
    )
    assert (status, body["error"]["code"]) == (401, "invalid_credentials")
    status, body, _ = await example_client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "whatever"}
    )
    assert (status, body["error"]["code"]) == (401, "invalid_credentials")
    status, body, _ = await example_client.post(
        "/auth/login", json={"email": "ann@example.com", "password": "correct horse battery"}
    )
    assert status == 200
    status, me, _ = await example_client.as_(body["token"]).get("/auth/me")
    assert (status, me["user"]["email"], me["orgs"]) == (200, "ann@example.com", [])


# --- orgs, features, Row-Level Security ---------------------------------------------------


async def make_user(admin: Client, email: str) -> str:
    status, body, _ = await admin.post("/users", json={"email": email, "name": email.split("@")[0]})
    assert status == 201, body
    return str(body["user"]["id"])


@pytest.fixture
async def two_orgs(admin_client: Client) -> dict[str, str]:
    """Ann admins org A, Bob admins org B, Cat is a plain member of A."""
    ids = {
        name: await make_user(admin_client, f"{name}@example.com") for name in ("ann", "bob", "cat")
    }
    for owner, org in (("ann", "A"), ("bob", "B")):
        status, body, _ = await admin_client.as_(admin_client.token(ids[owner])).post(
            "/orgs", json={"name": org}
        )
        assert status == 201, body
        ids[org] = body["org"]["id"]
    ann = admin_client.as_(admin_client.token(ids["ann"]))
    status, body, _ = await ann.post(f"/orgs/{ids['A']}/members", json={"email": "cat@example.com"})
    assert status == 201, body
    return ids


def as_user(client: Client, ids: dict[str, str], who: str, org: str | None = None) -> Client:
    headers = {"x_org_id": ids[org]} if org else {}
    return client.as_(client.token(ids[who]), **headers)


async def test_in_org_checks_membership(example_client: Client, two_orgs: dict[str, str]) -> None:
    ann = as_user(example_client, two_orgs, "ann")
    status, body, _ = await ann.get(f"/orgs/{two_orgs['A']}/members")
    assert status == 200
    assert [(m["email"], m["role"]) for m in body["members"]] == [
        ("ann@example.com", "org:admin"),
        ("cat@example.com", "org:member"),
    ]
    status, body, _ = await ann.get(f"/orgs/{two_orgs['B']}/members")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body, _ = await ann.get("/orgs/00000000-0000-4000-8000-0000000000ff/members")
    assert (status, body["error"]["code"]) == (404, "org_not_found")
    status, body, _ = await ann.get("/orgs/not-an-id/members")
    assert (status, body["error"]["code"]) == (404, "org_not_found")


async def test_another_orgs_id_in_x_org_id_is_403(
    example_client: Client, two_orgs: dict[str, str]
) -> None:
    status, body, _ = await as_user(example_client, two_orgs, "ann", org="B").get("/projects")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body, _ = await as_user(example_client, two_orgs, "ann").get("/projects")
    assert (status, body["error"]["code"]) == (400, "org_required")


async def test_wildcard_and_org_role_permissions(
    example_client: Client, two_orgs: dict[str, str]
) -> None:
    ann = as_user(example_client, two_orgs, "ann", org="A")  # org:admin → projects:*
    cat = as_user(example_client, two_orgs, "cat", org="A")  # org:member → projects:read
    status, body, _ = await ann.post("/projects", json={"name": "Apollo"})
    assert status == 201, body
    status, body, _ = await cat.post("/projects", json={"name": "Gemini"})
    assert (status, error(body)) == (403, ("forbidden", "missing permission 'projects:write'"))
    status, body, _ = await cat.get("/projects")
    assert (status, [p["name"] for p in body["projects"]]) == (200, ["Apollo"])


async def test_row_level_security_hides_other_orgs_rows(
    example_client: Client, two_orgs: dict[str, str], database: str
) -> None:
    ann = as_user(example_client, two_orgs, "ann", org="A")
    bob = as_user(example_client, two_orgs, "bob", org="B")
    await ann.post("/projects", json={"name": "A1"})
    status, body, _ = await bob.post("/projects", json={"name": "B1"})
    bobs_project = body["project"]["id"]
    with psycopg.connect(database) as conn:  # both rows are there
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == (2,)
    # projects.list has no org filter; the policy does the filtering.
    status, body, _ = await ann.get("/projects")
    assert [p["name"] for p in body["projects"]] == ["A1"]
    # Another org's id in a path parameter is simply not found.
    status, body, _ = await ann.get(f"/projects/{bobs_project}")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body, _ = await bob.get(f"/projects/{bobs_project}")
    assert status == 200


async def test_has_feature_follows_the_plan(
    example_client: Client, two_orgs: dict[str, str], database: str
) -> None:
    ann = as_user(example_client, two_orgs, "ann", org="A")
    status, body, _ = await ann.get("/projects/report")
    assert (status, body["error"]["code"]) == (403, "upgrade_required")
    with psycopg.connect(database) as conn:
        conn.execute(
            "UPDATE subscriptions SET plan_key = 'pro' WHERE org_id = %s", (two_orgs["A"],)
        )
    status, body, _ = await ann.get("/projects/report")
    assert (status, body) == (200, {"projects": 0})
    status, body, _ = await ann.get(f"/orgs/{two_orgs['A']}/features")
    assert body == {"plan": "pro", "features": ["projects", "reports"]}


async def test_org_creation_is_one_transaction(
    example_client: Client, admin_client: Client, database: str
) -> None:
    # A token for a user that does not exist: the membership's foreign key fails,
    # and the org inserted just before it must not survive.
    ghost = example_client.as_(example_client.token("00000000-0000-4000-8000-0000000000aa"))
    status, body, _ = await ghost.post("/orgs", json={"name": "Ghost"})
    assert (status, body["error"]["code"]) == (400, "invalid_reference")
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM organizations").fetchone() == (0,)


# --- custom apps: key types, audience, rate limits, connection hygiene --------------------


GUARDED = """
module: g
actions:
  - name: g.me
    handler: PKG.handlers:me
    guards: [authenticated, {has_role: editor}]
    triggers: [{api: GET /me}]
  - name: g.limited
    handler: PKG.handlers:me
    guards: [{rate_limit: {max: 2, window_seconds: 60, key: user}}]
    triggers: [{api: GET /limited}]
  - name: g.settings
    handler: PKG.handlers:settings
    transaction: false
    triggers: [{api: GET /settings}]
  - name: g.settingsTx
    handler: PKG.handlers:settings
    triggers: [{api: GET /settings-tx}]
"""

HANDLERS = """
async def me(input, ctx):
    return {"user_id": ctx.auth.user_id}

async def settings(input, ctx):
    [row] = await ctx.db.raw(
        "SELECT current_setting('app.user_id', true) AS user_id, current_user AS role, pg_backend_pid() AS pid"
    )
    return row
"""


async def serve_custom(
    tmp_path: Path,
    database: str,
    jwt_section: str,
    server: str = "{}",
    clock: Clock = SYSTEM_CLOCK,
):
    config, _ = write_app(
        tmp_path,
        {"g.yaml": GUARDED},
        HANDLERS,
        config=f"app: g\nserver: {server}\ndatabase: {{pool: {{min: 1, max: 1}}}}\nauth:\n  jwt: {jwt_section}\n",
    )
    return serving(config, database, clock=clock)


@pytest.fixture
async def hs_app(tmp_path: Path, database: str, manual_clock: ManualClock) -> AsyncIterator[Client]:
    """Its rate-limit windows are cut by `clock`, which stands still until a test moves it."""
    section = (
        f"{{secret: {SECRET}, algorithms: [HS256], audience: api, issuer: 'https://id.example'}}"
    )
    async with await serve_custom(
        tmp_path, database, section, "{trusted_proxies: [127.0.0.1]}", manual_clock
    ) as client:
        yield client


async def test_audience_and_issuer(hs_app: Client) -> None:
    good = claims(aud="api", iss="https://id.example", roles=["editor"])
    status, body, _ = await hs_app.as_(hs256(good)).get("/me")
    assert status == 200
    for wrong, message in (
        ({"aud": "web"}, "the token is for another audience"),
        ({"iss": "https://evil.example"}, "the token is from another issuer"),
    ):
        status, body, _ = await hs_app.as_(hs256({**good, **wrong})).get("/me")
        assert (status, error(body)) == (401, ("invalid_token", message))


async def test_missing_role_is_403(hs_app: Client) -> None:
    token = hs256(claims(aud="api", iss="https://id.example", roles=["viewer"]))
    status, body, _ = await hs_app.as_(token).get("/me")
    assert (status, error(body)) == (403, ("forbidden", "missing role 'editor'"))


async def test_rate_limit_answers_429_then_resets(
    hs_app: Client, manual_clock: ManualClock
) -> None:
    user = hs_app.as_(hs256(claims(aud="api", iss="https://id.example")))
    assert [(await user.get("/limited"))[0] for _ in range(2)] == [200, 200]
    status, body, response = await user.get("/limited")
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert response.headers["Retry-After"] == "60"  # the clock stands at a window's start
    manual_clock.advance(59.5)
    status, _, response = await user.get("/limited")
    assert (status, response.headers["Retry-After"]) == (429, "1")  # rounded up, never 0
    manual_clock.advance(0.5)  # the next window
    assert [(await user.get("/limited"))[0] for _ in range(3)] == [200, 200, 429]


async def test_anonymous_callers_are_limited_per_ip(hs_app: Client) -> None:
    one = hs_app.as_(X_Forwarded_For="203.0.113.1")
    two = hs_app.as_(X_Forwarded_For="203.0.113.2")
    assert [(await one.get("/limited"))[0] for _ in range(3)] == [200, 200, 429]
    assert [(await two.get("/limited"))[0] for _ in range(2)] == [200, 200]


async def test_settings_do_not_leak_between_requests_on_one_connection(hs_app: Client) -> None:
    token = hs256(claims(sub="user-7", aud="api", iss="https://id.example"))
    for path in ("/settings", "/settings-tx"):
        status, first, _ = await hs_app.as_(token).get(path)
        assert (status, first["user_id"]) == (200, "user-7")
        status, second, _ = await hs_app.get(path)  # anonymous, same pooled connection
        assert second["pid"] == first["pid"]
        assert second["user_id"] in ("", None)


async def test_rs256_refuses_algorithm_confusion(tmp_path: Path, database: str) -> None:
    public = rsa_keys()[1]
    (tmp_path / "public.pem").write_text(public)
    async with await serve_custom(
        tmp_path, database, "{algorithms: [RS256], public_key: public.pem}"
    ) as app:
        status, _, _ = await app.as_(rs256(claims(roles=["editor"]))).get("/me")
        assert status == 200
        forged = hmac_signed_with(public.encode(), claims(roles=["editor"]))
        status, body, _ = await app.as_(forged).get("/me")
        assert (status, error(body)) == (
            401,
            ("invalid_token", "the token's algorithm is not accepted"),
        )
        status, body, _ = await app.as_(unsigned(claims(roles=["editor"]))).get("/me")
        assert (status, body["error"]["code"]) == (401, "invalid_token")


# --- hardening found by review ---------------------------------------------------------


async def test_validation_errors_never_echo_a_password(example_client: Client) -> None:
    status, body, _ = await example_client.post(
        "/auth/signup", json={"email": "a@example.com", "password": "Secr", "name": "A"}
    )
    assert status == 400
    assert body["error"]["details"] == [
        {"path": "/password", "message": "the value is shorter than 8 characters"}
    ]
    assert "Secr" not in str(body)


async def test_tokens_need_exp_and_cannot_claim_org_roles(
    example_client: Client, two_orgs: dict[str, str]
) -> None:
    secret = example_client.runtime.config.auth.jwt.secret
    no_exp = hs256({"sub": two_orgs["cat"]}, secret=secret)
    status, body, _ = await example_client.as_(no_exp).get("/auth/me")
    assert (status, error(body)) == (401, ("invalid_token", "the token has no 'exp' claim"))
    # Cat is a plain member of A; a token calling her org:admin changes nothing.
    forged = hs256(claims(sub=two_orgs["cat"], roles=["org:admin"]), secret=secret)
    status, body, _ = await example_client.as_(forged, x_org_id=two_orgs["A"]).post(
        "/projects", json={"name": "X"}
    )
    assert (status, error(body)) == (403, ("forbidden", "missing permission 'projects:write'"))


async def test_an_org_id_spelled_differently_is_the_same_org(
    example_client: Client, two_orgs: dict[str, str]
) -> None:
    ann = example_client.token(two_orgs["ann"])
    for spelling in (two_orgs["A"].upper(), two_orgs["A"].replace("-", "")):
        status, body, _ = await example_client.as_(ann, x_org_id=spelling).post(
            "/projects", json={"name": spelling[:6]}
        )
        assert status == 201, body
        assert body["project"]["org_id"] == two_orgs["A"]


async def test_a_guarded_action_refuses_before_reading_the_body(example_client: Client) -> None:
    never = asyncio.Event()

    async def endless_body() -> AsyncIterator[bytes]:
        yield b'{"name": "' + b"x" * 65536
        await never.wait()  # the rest never comes: only an answer that skips the body returns
        yield b'"}'

    status, answer, _ = await example_client.post(
        "/orgs",
        data=endless_body(),
        headers={"Content-Type": "application/json", "Content-Length": "1000000"},
    )
    assert (status, answer["error"]["code"]) == (401, "unauthenticated")


ORG_LIMITED = """
module: o
actions:
  - name: o.limited
    handler: PKG.handlers:me
    guards: [authenticated, in_org, {rate_limit: {max: 100, window_seconds: 60, key: org}}]
    triggers: [{api: GET /limited}]
"""

ORG_TABLES = """
CREATE TABLE organizations (id uuid PRIMARY KEY);
CREATE TABLE org_memberships (org_id uuid, user_id uuid, role text);
INSERT INTO organizations VALUES ('00000000-0000-4000-8000-0000000000a1');
INSERT INTO org_memberships VALUES ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'org:member');
"""


async def test_org_rate_limits_do_not_starve_the_pool(tmp_path: Path, empty_database: str) -> None:
    config, _ = write_app(
        tmp_path,
        {"o.yaml": ORG_LIMITED},
        HANDLERS,
        migrations={"001.sql": ORG_TABLES},
        config=f"app: o\ndatabase: {{pool: {{min: 1, max: 3, acquire_timeout_seconds: 3}}}}\n"
        f"auth: {{jwt: {{secret: {SECRET}}}}}\n",
    )
    async with serving(config, empty_database) as app:
        member = app.as_(hs256(claims()), x_org_id="00000000-0000-4000-8000-0000000000a1")
        statuses = await asyncio.gather(*(member.get("/limited") for _ in range(12)))
        assert [s[0] for s in statuses] == [200] * 12


async def test_forwarded_for_on_several_lines_uses_the_last_proxy_written_hop(
    hs_app: Client,
) -> None:
    results = []
    for i in range(3):
        headers = [("X-Forwarded-For", f"6.6.6.{i}"), ("X-Forwarded-For", "7.7.7.7")]
        async with hs_app.session.get(hs_app.base + "/limited", headers=headers) as response:
            results.append(response.status)
    assert results == [200, 200, 429]


async def test_a_key_of_another_type_is_refused_not_a_500(tmp_path: Path, database: str) -> None:
    public = rsa_keys()[1]
    (tmp_path / "public.pem").write_text(public)
    async with await serve_custom(
        tmp_path, database, "{algorithms: [RS256], public_key: public.pem}"
    ) as app:
        es_header = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"ES256","typ":"JWT"}
        forged = f"{es_header}.eyJzdWIiOiJ4In0.AAAA"
        status, body, _ = await app.as_(forged).get("/me")
        assert (status, body["error"]["code"]) == (401, "invalid_token")
