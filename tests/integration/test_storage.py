"""The storage contract, run over every backend: a local folder, and S3 through the
real `minio` SDK against moto's S3 server on loopback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from minio import Minio

from actions_server.errors import NotFound, PayloadTooLarge
from actions_server.storage import InvalidKey, Storage
from actions_server.storage.local import LocalStorage
from actions_server.storage.s3 import S3Storage
from actions_server.storage.signing import signed_path
from support.apps import Client, serving, write_app

pytestmark = pytest.mark.integration

SECRET = b"storage-test-secret"
LIMIT = 64 * 1024 * 1024


def minio_client(endpoint: str) -> Minio:
    return Minio(
        endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1"
    )


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(
            tmp_path / "files", max_object_bytes=LIMIT, url_secret=SECRET, base_url=""
        )
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    s3 = S3Storage(minio_client(endpoint), f"bucket-{uuid.uuid4().hex[:8]}", max_object_bytes=LIMIT)
    await s3.ensure_bucket()
    yield s3


async def test_upload_download_stat_list_delete(storage: Storage) -> None:
    info = await storage.upload("docs/a.txt", "hello", metadata={"owner": "ann"})
    assert (info.key, info.size) == ("docs/a.txt", 5)
    await storage.upload("docs/b.bin", b"\x00\x01\x02", content_type="application/x-thing")
    await storage.upload("other/c.txt", io.BytesIO(b"from a file object"))
    assert await storage.download("docs/a.txt") == b"hello"
    assert await storage.exists("docs/b.bin")
    stat = await storage.stat("docs/b.bin")
    assert (stat.size, stat.content_type) == (3, "application/x-thing")
    assert (await storage.stat("docs/a.txt")).content_type == "text/plain"
    assert (await storage.stat("docs/a.txt")).metadata == {"owner": "ann"}
    assert [o.key for o in await storage.list("docs/")] == ["docs/a.txt", "docs/b.bin"]
    assert [o.key for o in await storage.list()] == ["docs/a.txt", "docs/b.bin", "other/c.txt"]
    await storage.delete("docs/a.txt")
    assert not await storage.exists("docs/a.txt")
    with pytest.raises(NotFound):
        await storage.download("docs/a.txt")
    with pytest.raises(NotFound):
        await storage.stat("docs/a.txt")
    await storage.delete("docs/a.txt")  # deleting what is gone is fine


async def test_uploading_again_replaces_the_object(storage: Storage) -> None:
    await storage.upload("k", b"one")
    await storage.upload("k", b"two", content_disposition='attachment; filename="k.txt"')
    assert await storage.download("k") == b"two"
    assert (await storage.stat("k")).content_disposition == 'attachment; filename="k.txt"'


async def test_open_streams_the_object(storage: Storage) -> None:
    blob = os.urandom(300_000)
    await storage.upload("big.bin", blob)
    chunks = [chunk async for chunk in storage.open("big.bin", chunk_size=65536)]
    assert b"".join(chunks) == blob
    assert len(chunks) > 1
    with pytest.raises(NotFound):
        async for _ in storage.open("missing"):
            pass


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../escape",
        "a/../../b",
        "a//b",
        "a/./b",
        "bad\x00key",
        "new\nline",
        "back\\slash",
        "x" * 1025,
    ],
)
async def test_bad_keys_are_refused_everywhere(storage: Storage, key: str) -> None:
    for attempt in (
        lambda: storage.upload(key, b"x"),
        lambda: storage.download(key),
        lambda: storage.stat(key),
        lambda: storage.delete(key),
        lambda: storage.get_url(key),
    ):
        with pytest.raises(InvalidKey) as caught:
            await attempt()
        assert (caught.value.status, caught.value.code) == (400, "invalid_key")


async def test_objects_over_the_limit_are_refused(tmp_path: Path) -> None:
    small = LocalStorage(tmp_path, max_object_bytes=10, url_secret=SECRET, base_url="")
    with pytest.raises(PayloadTooLarge):
        await small.upload("k", io.BytesIO(b"x" * 11))
    assert not await small.exists("k")
    assert [p.name for p in (tmp_path / "objects").iterdir()] == []  # no temp file left


async def test_s3_presigned_url_serves_the_bytes(s3_endpoint: str) -> None:
    s3 = S3Storage(
        minio_client(s3_endpoint), f"bucket-{uuid.uuid4().hex[:8]}", max_object_bytes=LIMIT
    )
    await s3.ensure_bucket()
    await s3.upload("report.csv", b"a,b\n1,2\n", content_type="text/csv")
    url = await s3.get_url("report.csv", expires_seconds=60)
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"a,b\n1,2\n"
        assert response.headers["Content-Type"] == "text/csv"


# --- local signed URLs, served by the server ---------------------------------------------

MANIFEST = """
module: f
actions:
  - name: f.put
    handler: PKG.handlers:put
    triggers: [{api: POST /put}]
  - name: f.url
    handler: PKG.handlers:url
    input: {type: object, properties: {key: {type: string}, seconds: {type: integer}}}
    triggers: [{api: GET /url}]
"""

HANDLERS = """
async def put(input, ctx):
    info = await ctx.storage.upload(
        "reports/q1 2026.csv", b"a,b\\n1,2\\n", content_type="text/csv",
        content_disposition='attachment; filename="q1.csv"',
    )
    return {"size": info.size}

async def url(input, ctx):
    return {"url": await ctx.storage.get_url(input["key"], expires_seconds=input.get("seconds", 60))}
"""


@pytest.fixture
async def app(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"f.yaml": MANIFEST},
        HANDLERS,
        config="app: f\nstorage: {backend: local, path: files, url_secret: s3cr3t}\n",
    )
    async with serving(config, database) as client:
        yield client


async def fetch(client: Client, url: str) -> tuple[int, bytes, Any]:
    async with client.session.get(client.base + url) as response:
        return response.status, await response.read(), response.headers


async def test_a_signed_url_serves_the_object_with_its_type_and_disposition(app: Client) -> None:
    await app.post("/put")
    _, body, _ = await app.get("/url", params={"key": "reports/q1 2026.csv"})
    status, content, headers = await fetch(app, body["url"])
    assert (status, content) == (200, b"a,b\n1,2\n")
    assert headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == 'attachment; filename="q1.csv"'
    # An uploaded page cannot run scripts on the API's origin.
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_tampered_and_expired_urls_are_403(app: Client) -> None:
    await app.post("/put")
    _, body, _ = await app.get("/url", params={"key": "reports/q1 2026.csv"})
    url = body["url"]
    tampered = url.replace("q1%202026", "q2%202026")
    flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
    for bad in (tampered, flipped, url.split("?")[0]):
        status, content, _ = await fetch(app, bad)
        assert status == 403, bad
        assert b"invalid_signature" in content
    # Signed with the app's secret as get_url signs, but an hour ago: only its age is wrong.
    expired = signed_path(b"s3cr3t", "reports/q1 2026.csv", 60, now=time.time() - 3600)
    status, content, _ = await fetch(app, expired)
    assert status == 403
    assert b"expired" in content
    fresh = signed_path(b"s3cr3t", "reports/q1 2026.csv", 60)
    assert (await fetch(app, fresh))[0] == 200  # the same signing, in time: served


# --- a 50 MB object streams through, never held twice ---------------------------------------

STREAM = """
import asyncio, os, resource, sys, tempfile
from actions_server.storage.local import LocalStorage
from actions_server.storage.s3 import S3Storage
from minio import Minio

SIZE = 50 * 1024 * 1024

async def main(backend, where):
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "source.bin")
        with open(source, "wb") as out:
            for _ in range(SIZE // (1024 * 1024)):
                out.write(os.urandom(1024 * 1024))
        if backend == "local":
            storage = LocalStorage(__import__("pathlib").Path(where), max_object_bytes=SIZE * 2, url_secret=b"x", base_url="")
        else:
            client = Minio(where, access_key="testing", secret_key="testing", secure=False, region="us-east-1")
            storage = S3Storage(client, "stream-bucket", max_object_bytes=SIZE * 2)
            await storage.ensure_bucket()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(source, "rb") as data:
            await storage.upload("big.bin", data)
        size = 0
        async for chunk in storage.open("big.bin", chunk_size=1024 * 1024):
            size += len(chunk)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(size, (after - before) * 1024)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_50_mb_object_streams_without_being_held_twice(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = (
        str(tmp_path / "files") if backend == "local" else request.getfixturevalue("s3_endpoint")
    )
    script = tmp_path / "stream.py"
    script.write_text(textwrap.dedent(STREAM))
    done = subprocess.run(
        [sys.executable, str(script), backend, where], capture_output=True, text=True, check=True
    )
    size, grown = (int(x) for x in done.stdout.split())
    assert size == 50 * 1024 * 1024
    assert grown < 50 * 1024 * 1024, f"resident memory grew by {grown / 2**20:.0f} MiB"
