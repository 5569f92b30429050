"""Bodies schemathesis found answered with 500: each is the client's mistake, a 400.

Multipart bodies that do not follow the format are in test_multipart.py.
"""

from __future__ import annotations

import pytest

from support.apps import Client

pytestmark = pytest.mark.integration


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
