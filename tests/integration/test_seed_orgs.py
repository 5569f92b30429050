"""Apps that follow the seed literally: org ids of any column type, and memberships
stored with their `org:` prefix (`role: 'org:admin'`), with no setting to say so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, write_app

pytestmark = pytest.mark.integration

MANIFEST = """
module: seed
actions:
  - name: seed.whoami
    handler: PKG.handlers:whoami
    guards: [authenticated, in_org]
    triggers: [{api: GET /orgs/:org_id/me}]
  - name: seed.invite
    handler: PKG.handlers:whoami
    guards: [authenticated, in_org, {has_permission: "org:invitations:manage"}]
    triggers: [{api: POST /orgs/:org_id/invitations}]
  - name: seed.admins
    handler: PKG.handlers:whoami
    guards: [authenticated, in_org, {has_role: "org:admin"}]
    triggers: [{api: GET /orgs/:org_id/admin-only}]
"""

HANDLERS = """
async def whoami(input, ctx):
    return {"org_id": ctx.auth.org_id, "org_role": ctx.auth.org_role,
            "roles": sorted(ctx.auth.roles), "permissions": sorted(ctx.auth.permissions)}
"""

CONFIG = """
app: seed-app
auth:
  jwt: {secret: test-secret-that-is-long-enough-0123456789}
  roles:
    org:admin: [org:invitations:manage]
    org:member: []
"""

# The seed's shapes, with the id type under test. Memberships are inserted the
# seed's way: `role: 'org:admin'`; one legacy row says plain `admin`.
MIGRATION = """
CREATE TABLE organizations (id {type} PRIMARY KEY, name text NOT NULL);
CREATE TABLE org_memberships (
    org_id {type} NOT NULL REFERENCES organizations (id),
    user_id text NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
INSERT INTO organizations (id, name) VALUES ({a}, 'A'), ({b}, 'B');
INSERT INTO org_memberships (org_id, user_id, role) VALUES
    ({a}, 'ann', 'org:admin'), ({a}, 'max', 'org:member'), ({b}, 'ann', 'admin');
"""

ID_TYPES = {
    "text": ("'org-a'", "'org-b'", "org-a", "org-b"),
    "integer": ("1", "2", "1", "2"),
    "bigint": ("10000000001", "10000000002", "10000000001", "10000000002"),
    "uuid": (
        "'8f2c1a9e-0000-4000-8000-00000000000a'",
        "'8f2c1a9e-0000-4000-8000-00000000000b'",
        "8f2c1a9e-0000-4000-8000-00000000000a",
        "8f2c1a9e-0000-4000-8000-00000000000b",
    ),
}


@pytest.fixture(params=sorted(ID_TYPES))
async def seeded(
    request: pytest.FixtureRequest, tmp_path: Path, empty_database: str
) -> AsyncIterator[tuple[Client, str, str]]:
    a_sql, b_sql, a, b = ID_TYPES[request.param]
    migration = MIGRATION.format(type=request.param, a=a_sql, b=b_sql)
    config, _ = write_app(
        tmp_path,
        {"seed.yaml": MANIFEST},
        HANDLERS,
        config=CONFIG,
        migrations={"001_orgs.sql": migration},
    )
    async with serving(config, empty_database) as client:
        yield client, a, b


async def test_in_org_finds_orgs_whatever_the_id_type(seeded: tuple[Client, str, str]) -> None:
    client, a, _ = seeded
    ann = client.as_(client.token("ann"))
    status, body, _ = await ann.get(f"/orgs/{a}/me")
    assert status == 200, body
    assert body["org_id"] == a
    assert body["org_role"] == "org:admin"
    assert "org:admin" in body["roles"]


async def test_a_seed_style_role_grants_its_permissions(seeded: tuple[Client, str, str]) -> None:
    client, a, _ = seeded
    ann, max_ = client.as_(client.token("ann")), client.as_(client.token("max"))
    assert (await ann.post(f"/orgs/{a}/invitations"))[0] == 200
    assert (await ann.get(f"/orgs/{a}/admin-only"))[0] == 200
    status, body, _ = await max_.post(f"/orgs/{a}/invitations")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await max_.get(f"/orgs/{a}/admin-only"))[0] == 403


async def test_a_bare_role_still_means_the_org_role(seeded: tuple[Client, str, str]) -> None:
    client, _, b = seeded
    ann = client.as_(client.token("ann"))
    status, body, _ = await ann.post(f"/orgs/{b}/invitations")
    assert status == 200, body
    assert "org:admin" in body["roles"]


async def test_unknown_and_impossible_ids_are_404(seeded: tuple[Client, str, str]) -> None:
    client, _, _ = seeded
    ann = client.as_(client.token("ann"))
    for org in ("org-zzz", "999", "not a uuid at all", "8f2c1a9e-0000-4000-8000-0000000000ff"):
        status, body, _ = await ann.get(f"/orgs/{org}/me")
        assert (status, body["error"]["code"]) == (404, "org_not_found"), (org, body)


async def test_non_members_are_403(seeded: tuple[Client, str, str]) -> None:
    client, a, _ = seeded
    eve = client.as_(client.token("eve"))
    status, body, _ = await eve.get(f"/orgs/{a}/me")
    assert (status, body["error"]["code"]) == (403, "forbidden")
