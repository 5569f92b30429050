"""Bodies schemathesis found answered with 500: each is the client's mistake, a 400."""

from __future__ import annotations

import pytest

from support.apps import Client

pytestmark = pytest.mark.integration

LOGIN = "/auth/login"  # no guard that needs a caller: the body is read


async def test_multipart_without_a_boundary(example_client: Client) -> None:
    status, body, _ = await example_client.post(
        LOGIN, data=b'{"email": "a@b.co"}', headers={"Content-Type": "multipart/form-data"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"
    assert "boundary" in body["error"]["message"]


async def test_multipart_part_with_broken_headers(example_client: Client) -> None:
    raw = b'--b0\r\nContent-Disposition: form-data; name="\x7f\xc2\x81"\r\n\r\nx\r\n--b0--\r\n'
    status, body, _ = await example_client.post(
        LOGIN, data=raw, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"


async def test_multipart_field_in_an_unknown_charset(example_client: Client) -> None:
    raw = (
        b'--b0\r\nContent-Disposition: form-data; name="email"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nx\r\n--b0--\r\n"
    )
    status, body, _ = await example_client.post(
        LOGIN, data=raw, headers={"Content-Type": "multipart/form-data; boundary=b0"}
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_body"


async def test_upload_naming_a_file_in_json_is_refused_even_with_base64(
    example_client: Client,
) -> None:
    status, body, _ = await example_client.post(
        "/auth/signup",
        json={"email": "up@example.com", "password": "correct horse", "name": "Up"},
    )
    assert status == 201, body
    owner = example_client.as_(body["token"])
    status, body, _ = await owner.post("/orgs", json={"name": "Up Inc"})
    assert status == 201, body
    org = body["org"]["id"]
    # Valid for the schema (oneOf: `file` alone), but JSON cannot carry a file.
    status, body, _ = await owner.post(
        f"/orgs/{org}/files", json={"file": "a.txt", "content_base64": ""}
    )
    assert status == 400, body
    assert "multipart/form-data" in body["error"]["message"]
