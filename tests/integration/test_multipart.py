"""multipart/form-data through a real socket: only actions with a `format: binary` field
take it, a text field is capped while it streams, and aiohttp's own size limits are a
413 in the one error body, never a 500."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.apps import Client, serving, write_app
from support.raw_http import closed, connect, read_response

pytestmark = pytest.mark.integration

MANIFEST = """
module: up
actions:
  - name: up.put
    handler: PKG.handlers:put
    input:
      type: object
      properties:
        file: {type: string, format: binary}
        note: {type: string}
        n: {type: integer}
    triggers: [{api: POST /up}]
  - name: up.json
    handler: PKG.handlers:note
    input:
      type: object
      properties:
        note: {type: string}
    triggers: [{api: POST /json}]
"""

HANDLERS = """
async def put(input, ctx):
    file = input.get("file")
    return {
        "file": file.read().decode() if file is not None else None,
        "note_bytes": len(input.get("note", "")),
        "n": input.get("n"),
    }

async def note(input, ctx):
    return {"note": input.get("note")}
"""

MIB = 1024 * 1024


@pytest.fixture
async def client(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"up.yaml": MANIFEST}, HANDLERS, config="app: up\n")
    async with serving(config, database) as c:
        yield c


def form(**fields: str | bytes) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        if isinstance(value, bytes):
            data.add_field(name, value, filename=f"{name}.txt", content_type="text/plain")
        else:
            data.add_field(name, value)
    return data


async def test_an_upload_with_fields_is_read(client: Client) -> None:
    status, body, _ = await client.post("/up", data=form(file=b"hello", note="hi", n="7"))
    assert status == 200, body
    assert body == {"file": "hello", "note_bytes": 2, "n": 7}


async def test_a_text_field_of_exactly_one_mib_is_accepted(client: Client) -> None:
    status, body, _ = await client.post("/up", **large_form("note", MIB))
    assert status == 200, body
    assert body["note_bytes"] == MIB


def large_form(name: str, size: int) -> dict[str, Any]:
    """A multipart body with one text field of `size` bytes, as `client.post` keywords
    (aiohttp's FormData refuses to send a string that large)."""
    raw = (
        f'--b0\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + b"x" * size
        + b"\r\n--b0--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b0"}
    return {"data": io.BytesIO(raw), "headers": headers}


async def test_a_text_field_over_one_mib_is_413(client: Client) -> None:
    status, body, response = await client.post("/up", **large_form("note", MIB + 1))
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert "note" in body["error"]["message"]
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]


async def test_a_text_field_is_refused_as_soon_as_it_passes_the_cap(client: Client) -> None:
    """The body is still arriving (and would be 20 MiB): the 413 does not wait for it."""
    reader, writer = await connect(client.base)
    try:
        head = (
            b"POST /up HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: multipart/form-data; boundary=b0\r\n"
            b"Content-Length: 20971520\r\n\r\n"
            b'--b0\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        )
        writer.write(head + b"x" * (MIB + 64 * 1024))
        await writer.drain()
        started = time.monotonic()
        response = await read_response(reader, 5)
        assert response.status == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert time.monotonic() - started < 2
    finally:
        writer.close()
        await closed(writer)


async def test_multipart_on_an_action_without_a_file_field_is_415(client: Client) -> None:
    status, body, response = await client.post("/json", data=form(note="hi"))
    assert status == 415, body
    assert body["error"]["code"] == "unsupported_media_type"
    assert "application/json" in body["error"]["message"]
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]
    status, body, _ = await client.post("/json", json={"note": "hi"})
    assert (status, body) == (200, {"note": "hi"})


async def test_multipart_login_is_415(example_client: Client) -> None:
    status, body, _ = await example_client.post(
        "/auth/login", data=form(email="a@b.co", password="correct horse")
    )
    assert status == 415, body
    assert "application/json" in body["error"]["message"]


async def test_aiohttps_own_body_limit_is_a_413_not_a_500(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The dashboard reads its forms with aiohttp's `request.post()`, capped at 1 MiB."""
    status, body, response = await client.post(
        "/_dashboard/login",
        data=io.BytesIO(b"token=" + b"x" * (2 * MIB)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]
    assert not [r for r in caplog.records if r.exc_info]


# --- bodies that do not follow the multipart format: the client's mistake, a 400 -------------


async def test_multipart_without_a_boundary(client: Client) -> None:
    status, body, _ = await client.post(
        "/up", data=b'{"note": "a"}', headers={"Content-Type": "multipart/form-data"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"
    assert "boundary" in body["error"]["message"]


async def test_multipart_part_with_broken_headers(client: Client) -> None:
    raw = b'--b0\r\nContent-Disposition: form-data; name="\x7f\xc2\x81"\r\n\r\nx\r\n--b0--\r\n'
    status, body, _ = await client.post(
        "/up", data=raw, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"


async def test_multipart_field_in_an_unknown_charset(client: Client) -> None:
    raw = (
        b'--b0\r\nContent-Disposition: form-data; name="note"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nx\r\n--b0--\r\n"
    )
    status, body, _ = await client.post(
        "/up", data=raw, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"


async def test_multipart_field_that_is_not_in_its_charset(client: Client) -> None:
    raw = b'--b0\r\nContent-Disposition: form-data; name="note"\r\n\r\n\xff\xfe\r\n--b0--\r\n'
    status, body, _ = await client.post(
        "/up", data=raw, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"


async def test_multipart_field_in_an_unknown_transfer_encoding(client: Client) -> None:
    raw = (
        b'--b0\r\nContent-Disposition: form-data; name="note"\r\n'
        b"Content-Transfer-Encoding: x-unheard-of\r\n\r\nx\r\n--b0--\r\n"
    )
    status, body, _ = await client.post(
        "/up", data=raw, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert status == 400, body
    assert body["error"]["code"] == "malformed_body"
