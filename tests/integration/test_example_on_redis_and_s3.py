"""The example app served as production runs it: KV and rate limits in a real Redis,
org files in S3 (moto's server through the minio SDK), all through HTTP.

The kv and storage sections are read from a config file by the real loader, then
given to the example app's config.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from minio import Minio
from yarl import URL

from actions_server.config import Config, load_config
from support.apps import Client, serving, working
from support.clock import ManualClock
from support.polling import eventually, query

pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 64  # every byte value, 16 KiB


@dataclasses.dataclass
class Backends:
    redis: redis.Redis
    prefix: str
    s3: Minio
    endpoint: str
    bucket: str


@pytest.fixture
def backends(redis_url: str, s3_endpoint: str) -> Iterator[Backends]:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(redis_url)
    s3 = Minio(
        s3_endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1"
    )
    yield Backends(client, prefix, s3, s3_endpoint, f"e2e-{uuid.uuid4().hex[:8]}")
    for name in client.scan_iter(match=prefix + "*"):
        client.delete(name)
    client.close()


@pytest.fixture
async def app(
    example_config: Config,
    database: str,
    tmp_path: Path,
    backends: Backends,
    redis_url: str,
    manual_clock: ManualClock,
) -> AsyncIterator[Client]:
    (tmp_path / "config.yaml").write_text(
        "app: sections\n"
        f"kv: {{backend: redis, url: '{redis_url}', prefix: '{backends.prefix}'}}\n"
        "storage:\n"
        "  backend: s3\n"
        f"  endpoint: '{backends.endpoint}'\n"
        f"  bucket: {backends.bucket}\n"
        "  access_key: testing\n"
        "  secret_key: testing\n"
        "  region: us-east-1\n"
        "  secure: false\n"
    )
    sections = load_config(tmp_path / "config.yaml", env={})
    config = dataclasses.replace(example_config, kv=sections.kv, storage=sections.storage)
    async with serving(config, database, clock=manual_clock) as client:
        yield client


async def signup(client: Client, email: str) -> Client:
    status, body, _ = await client.post(
        "/auth/signup", json={"email": email, "password": "correct horse", "name": email[:4]}
    )
    assert status == 201, body
    return client.as_(body["token"])


async def org_of(client: Client, name: str) -> tuple[Client, str]:
    status, body, _ = await client.post("/orgs", json={"name": name})
    assert status == 201, body
    return client.as_(x_org_id=body["org"]["id"]), body["org"]["id"]


async def fetch(url: str) -> tuple[int, bytes, str]:
    """GET a presigned URL as it is (re-encoding it would break its signature)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(URL(url, encoded=True)) as response,
    ):
        return (
            response.status,
            await response.read(),
            response.headers.get("Content-Disposition", ""),
        )


async def test_org_files_are_stored_in_s3_and_downloaded_from_it(
    app: Client, database: str, backends: Backends
) -> None:
    owner = await signup(app, "owner@example.com")
    in_org, org = await org_of(owner, "Acme")

    status, body, _ = await in_org.post(
        f"/orgs/{org}/files",
        json={"name": "bytes.bin", "content_base64": base64.b64encode(PAYLOAD).decode()},
    )
    assert status == 201, body
    as_json = body["file"]["id"]
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("file", PAYLOAD[::-1], filename="résumé.pdf", content_type="application/pdf")
    status, body, _ = await in_org.post(f"/orgs/{org}/files", data=form)
    assert status == 201, body
    as_multipart = body["file"]["id"]

    # The bytes are in the bucket, under the org's prefix, with their type.
    stored = {o.object_name: o for o in backends.s3.list_objects(backends.bucket, recursive=True)}
    assert set(stored) == {f"orgs/{org}/files/{as_json}", f"orgs/{org}/files/{as_multipart}"}
    stat = backends.s3.stat_object(backends.bucket, f"orgs/{org}/files/{as_multipart}")
    assert (stat.size, stat.content_type) == (len(PAYLOAD), "application/pdf")

    for file_id, expected in ((as_json, PAYLOAD), (as_multipart, PAYLOAD[::-1])):
        status, body, _ = await in_org.get(f"/orgs/{org}/files/{file_id}/download")
        assert status == 200, body
        assert body["url"].startswith(f"http://{backends.endpoint}/{backends.bucket}/")
        status, content, disposition = await fetch(body["url"])
        assert (status, content) == (200, expected)
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in disposition
    assert query(database, "SELECT count(*) AS n FROM files") == [{"n": 2}]


async def test_plan_features_are_cached_in_redis_until_the_plan_changes(
    app: Client, database: str, backends: Backends
) -> None:
    owner = await signup(app, "owner@example.com")
    in_org, org = await org_of(owner, "Acme")
    status, body, _ = await in_org.get(f"/orgs/{org}/features")
    assert (status, body["plan"]) == (200, "free")
    free_features = body["features"]

    key = f"{backends.prefix}orgs:{org}:features"
    assert 0 < backends.redis.pttl(key) <= 300_000  # cached for five minutes, in Redis
    assert query(database, "SELECT count(*) AS n FROM actions_server.kv") == [{"n": 0}]

    # Behind the app's back: the cache still answers.
    query(database, "UPDATE subscriptions SET plan_key = 'pro' WHERE org_id = %s", org)
    assert (await in_org.get(f"/orgs/{org}/features"))[1]["features"] == free_features

    # Through the app: the subscription.updated subscriber drops the Redis entry.
    status, _, _ = await in_org.put(f"/orgs/{org}/subscription", json={"plan_key": "pro"})
    assert status == 200
    async with working(app):
        assert await eventually(lambda: not backends.redis.exists(key))
    status, body, _ = await in_org.get(f"/orgs/{org}/features")
    assert body["plan"] == "pro"
    assert set(body["features"]) > set(free_features)


async def test_login_attempts_are_counted_in_redis(
    app: Client, database: str, backends: Backends, manual_clock: ManualClock
) -> None:
    await signup(app, "owner@example.com")
    wrong = {"email": "owner@example.com", "password": "not the password"}
    statuses = [(await app.post("/auth/login", json=wrong))[0] for _ in range(10)]
    assert statuses == [401] * 10  # auth.login allows 10 a minute per IP
    status, body, response = await app.post("/auth/login", json=wrong)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert response.headers["Retry-After"] == "60"

    [counter] = backends.redis.keys(f"{backends.prefix}actions_server:rate:auth.login|*")
    assert counter.decode().endswith(f"|ip:127.0.0.1|{manual_clock.now:.0f}")
    assert int(backends.redis.get(counter) or 0) == 11
    assert 0 < backends.redis.pttl(counter) <= 61_000  # the window, and a second to spare
    assert query(database, "SELECT count(*) AS n FROM actions_server.kv") == [{"n": 0}]

    manual_clock.advance(60)  # the next window: counting starts again
    right = {"email": "owner@example.com", "password": "correct horse"}
    assert (await app.post("/auth/login", json=right))[0] == 200
