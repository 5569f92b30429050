"""The example app's MCP tools at /mcp, driven by the official SDK's client in both
eras (2026-07-28 through server/discover, 2025-11-25 through initialize)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from support.apps import Client
from support.mcp_clients import MODES, mcp_client
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MODERN = "2026-07-28"
READER_ID = "00000000-0000-4000-8000-0000000000e1"


@pytest.mark.parametrize("mode", MODES)
async def test_the_tools_are_the_manifests_actions(example_client: Client, mode: str) -> None:
    registry = example_client.runtime.registry
    async with mcp_client(example_client.base + "/mcp", mode=mode) as mcp:
        assert (mcp.protocol_version == MODERN) == (mode == "auto")
        listed = (await mcp.list_tools()).tools
    assert [tool.name for tool in listed] == ["projects_list", "users_list"]
    for tool in listed:
        action = registry.tools[tool.name].action
        assert tool.description == action.description
        assert action.output is not None
        schema = action.input.schema if action.input is not None else {"type": "object"}
        assert tool.input_schema == schema
        assert tool.output_schema == action.output.schema
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
    assert [tool.title for tool in listed] == ["List projects", "List users"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_reads_the_database_and_is_recorded(
    admin_client: Client, database: str, mode: str
) -> None:
    status, body, _ = await admin_client.post(
        "/users", json={"email": f"{mode}@example.com", "name": "Ann"}
    )
    assert status == 201, body
    token = admin_client.headers["Authorization"].removeprefix("Bearer ")
    async with mcp_client(admin_client.base + "/mcp", mode=mode, token=token) as mcp:
        result = await mcp.call_tool("users_list", {"limit": 5})
    assert result.is_error is False
    listed = result.structured_content
    assert listed is not None
    assert [u["email"] for u in listed["users"]] == [f"{mode}@example.com"]
    assert (listed["total"], listed["limit"], listed["offset"]) == (1, 5, 0)
    [text] = result.content
    assert json.loads(text.text) == listed  # the same JSON as text

    def recorded() -> list[dict[str, Any]]:
        return query(
            database,
            "SELECT action, trigger, status FROM actions_server.runs WHERE trigger = 'mcp'",
        )

    assert await eventually(recorded) == [
        {"action": "users.list", "trigger": "mcp", "status": "ok"}
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_refusals_and_invalid_input_are_tool_errors(
    example_client: Client, mode: str
) -> None:
    url = example_client.base + "/mcp"
    reader = example_client.token(READER_ID, permissions=("users:read",))
    nobody = example_client.token(READER_ID)  # a user without users:read
    async with mcp_client(url, mode=mode, token=reader) as mcp:
        invalid = await mcp.call_tool("users_list", {"limit": 500, "colour": "red"})
    assert invalid.is_error is True
    [text] = invalid.content
    assert text.text.splitlines()[:3] == [
        "input is invalid",
        "/limit: 500 is greater than the maximum of 100",
        "/colour: is not an allowed property",
    ]
    assert "(400 validation_failed; trace id " in text.text

    async with mcp_client(url, mode=mode, token=nobody) as mcp:
        # Hidden from a caller whose permissions its guards refuse...
        assert [tool.name for tool in (await mcp.list_tools()).tools] == ["projects_list"]
        # ...and refused, as a result the model reads, when called all the same.
        refused = await mcp.call_tool("users_list", {})
    assert refused.is_error is True
    [text] = refused.content
    assert text.text.startswith("missing permission 'users:read'\n(403 forbidden; trace id ")


@pytest.mark.parametrize("mode", MODES)
async def test_a_guarded_tool_without_a_token_is_401_with_the_metadata(
    example_client: Client, mode: str
) -> None:
    async with mcp_client(example_client.base + "/mcp", mode=mode) as mcp:
        # Anonymous callers see every tool: calling one is how they learn to sign in.
        assert len((await mcp.list_tools()).tools) == 2
        with pytest.raises(MCPError) as refused:
            await mcp.call_tool("users_list", {})
    assert refused.value.code == -31401
    assert "authentication required" in refused.value.message
    assert refused.value.error.data == {"code": "unauthenticated"}


async def test_unknown_tool_is_a_protocol_error(example_client: Client) -> None:
    async with mcp_client(example_client.base + "/mcp", mode="auto") as mcp:
        with pytest.raises(MCPError) as unknown:
            await mcp.call_tool("users_delete_all", {})
    assert (unknown.value.code, unknown.value.message) == (
        -32602,
        "unknown tool 'users_delete_all'",
    )


# --- the wire, as the specification words it -------------------------------------------------


def modern(
    method: str, params: dict[str, Any] | None = None, *, version: str = MODERN, **headers: str
) -> dict[str, Any]:
    """Keyword arguments for a POST of a 2026-07-28 request, its headers agreeing unless told."""
    body_params = dict(params or {})
    body_params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    sent = {"MCP-Protocol-Version": version, "Mcp-Method": method}
    if "name" in body_params:
        sent["Mcp-Name"] = body_params["name"]
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": body_params}
    return {"json": body, "headers": {k: v for k, v in sent.items() if v}}


async def test_headers_must_agree_with_the_body(example_client: Client) -> None:
    call = {"name": "users_list", "arguments": {}}
    cases = [
        (modern("tools/call", call, Mcp_Name="projects_list"), "Mcp-Name header says"),
        (modern("tools/call", call, Mcp_Method="tools/list"), "Mcp-Method header says"),
        (modern("tools/call", call, Mcp_Name=""), "Mcp-Name header is missing"),
        (modern("tools/list", MCP_Protocol_Version=""), "MCP-Protocol-Version header is missing"),
        (modern("tools/list", MCP_Protocol_Version="2025-11-25"), "header says '2025-11-25'"),
    ]
    for request, said in cases:
        status, body, _ = await example_client.post("/mcp", **request)
        assert status == 400, body
        assert body["id"] == 7
        assert body["error"]["code"] == -32020
        assert said in body["error"]["message"]
    # Base64 sentinel form of the same name agrees.
    encoded = "=?base64?dXNlcnNfbGlzdA==?="
    status, body, _ = await example_client.post(
        "/mcp", **modern("tools/call", call, Mcp_Name=encoded)
    )
    assert (status, body["error"]["code"]) == (401, -31401)


async def test_an_unsupported_version_names_the_supported_ones(example_client: Client) -> None:
    supported = ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
    status, body, _ = await example_client.post(
        "/mcp", **modern("tools/list", version="1900-01-01")
    )
    assert status == 400
    assert body["error"] == {
        "code": -32022,
        "message": "Unsupported protocol version",
        "data": {"supported": supported, "requested": "1900-01-01"},
    }
    legacy = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"MCP-Protocol-Version": "2099-01-01"}
    status, body, _ = await example_client.post("/mcp", json=legacy, headers=headers)
    assert (status, body["error"]["code"], body["error"]["data"]["requested"]) == (
        400,
        -32022,
        "2099-01-01",
    )


async def test_what_is_not_a_request_for_a_tool(example_client: Client) -> None:
    for method in ("GET", "DELETE"):
        status, body, response = await example_client.request(method, "/mcp")
        assert (status, response.headers["Allow"], body["error"]["code"]) == (405, "POST", -32600)
        assert "id" not in body
    status, body, _ = await example_client.post(
        "/mcp", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]["code"]) == (400, -32700)
    status, body, _ = await example_client.post("/mcp", json=[{"jsonrpc": "2.0", "id": 1}])
    assert (status, body["error"]["code"]) == (400, -32600)
    status, body, _ = await example_client.post("/mcp", **modern("prompts/list"))
    assert (status, body["error"]["code"]) == (404, -32601)
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    status, body, _ = await example_client.post("/mcp", json=notification)
    assert (status, body) == (202, None)
    status, body, _ = await example_client.post(
        "/mcp", data="{}", headers={"Content-Type": "text/plain"}
    )
    assert (status, body["error"]["code"]) == (415, -32600)


async def test_origins_other_than_loopback_and_the_allowed_are_403(example_client: Client) -> None:
    listing = modern("tools/list")
    for origin, expected in (
        ("https://evil.example", 403),
        ("http://localhost:6274", 200),
        ("http://127.0.0.1:3000", 200),
        ("null", 403),
    ):
        request = {**listing, "headers": {**listing["headers"], "Origin": origin}}
        status, body, _ = await example_client.post("/mcp", **request)
        assert status == expected, (origin, body)


async def test_legacy_handshake_mints_no_session(example_client: Client) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    status, body, response = await example_client.post("/mcp", json=initialize)
    assert status == 200
    assert "Mcp-Session-Id" not in response.headers
    assert body["result"]["protocolVersion"] == "2025-06-18"
    assert body["result"]["serverInfo"]["name"] == "saas-example"
    assert body["result"]["capabilities"] == {"tools": {"listChanged": False}}
    initialize["params"]["protocolVersion"] = "2024-01-01"
    status, body, _ = await example_client.post("/mcp", json=initialize)
    assert body["result"]["protocolVersion"] == "2025-11-25"


async def test_401_points_at_the_protected_resource_metadata(example_client: Client) -> None:
    call = modern("tools/call", {"name": "users_list", "arguments": {}})
    status, body, response = await example_client.post("/mcp", **call)
    metadata = f"{example_client.base}/.well-known/oauth-protected-resource/mcp"
    assert status == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{metadata}"'
    assert body["id"] == 7
    assert body["error"]["code"] == -31401
    bad = {**call, "headers": {**call["headers"], "Authorization": "Bearer not-a-jwt"}}
    status, body, response = await example_client.post("/mcp", **bad)
    assert status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{metadata}", error="invalid_token"')
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ):
        status, document, _ = await example_client.get(path)
        assert (status, document) == (
            200,
            {
                "resource": f"{example_client.base}/mcp",
                "bearer_methods_supported": ["header"],
                "resource_name": "saas-example",
            },
        )


# --- tools of a small app: public, array output, a handler bug -------------------------------

TOOLS_APP = """
module: t
actions:
  - name: t.echo
    description: Echo the text back
    handler: PKG.handlers:echo
    input:
      type: object
      required: [text]
      properties: {text: {type: string}}
    output:
      type: object
      properties: {text: {type: string}}
    triggers: [{mcp: true, annotations: {read_only: true, open_world: false}}]
  - name: t.letters
    handler: PKG.handlers:letters
    input: {type: object, properties: {word: {type: string}}}
    output: {type: array, items: {type: string}}
    triggers: [{mcp: letters, title: Letters}]
  - name: t.broken
    handler: PKG.handlers:broken
    triggers: [{mcp: true, annotations: {destructive: true, idempotent: false}}]
"""

TOOLS_HANDLERS = """
async def echo(input, ctx):
    return {"text": input["text"]}

async def letters(input, ctx):
    return list(input.get("word", ""))

async def broken(input, ctx):
    raise RuntimeError("secret details of a bug")
"""


@pytest.fixture
async def tools_app(tmp_path: Any, database: str) -> Any:
    from support.apps import serving, write_app

    config, _ = write_app(tmp_path, {"t.yaml": TOOLS_APP}, TOOLS_HANDLERS)
    async with serving(config, database) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_public_tools_array_output_and_a_bug(tools_app: Client, mode: str) -> None:
    async with mcp_client(tools_app.base + "/mcp", mode=mode) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        echoed = await mcp.call_tool("t_echo", {"text": "hi"})
        letters = await mcp.call_tool("letters", {"word": "abc"})
        broken = await mcp.call_tool("t_broken", {})
    assert list(tools) == ["letters", "t_broken", "t_echo"]
    assert tools["t_broken"].input_schema == {"type": "object"}
    hints = tools["t_broken"].annotations
    assert hints is not None
    assert (hints.destructive_hint, hints.idempotent_hint, hints.read_only_hint) == (
        True,
        False,
        None,
    )
    assert tools["letters"].title == "Letters"
    assert (echoed.is_error, echoed.structured_content) == (False, {"text": "hi"})
    # Before 2026-07-28 an output schema (and structured content) must be an object.
    if mode == "legacy":
        assert tools["letters"].output_schema is None
        assert letters.structured_content is None
    else:
        assert tools["letters"].output_schema == {"type": "array", "items": {"type": "string"}}
        assert letters.structured_content == ["a", "b", "c"]
    assert letters.content[0].text == '["a","b","c"]'
    assert broken.is_error is True
    text = broken.content[0].text
    assert text.startswith("internal error; see the server log for trace id ")
    assert "secret" not in text
    assert "RuntimeError" not in text


async def test_configured_resource_and_authorization_servers(
    example_config: Any, database: str, tmp_path: Any
) -> None:
    import dataclasses

    from support.apps import serving

    sections = {
        **example_config.sections,
        "mcp": {
            "resource": "https://api.example.com/mcp",
            "authorization_servers": ["https://auth.example.com"],
            "allowed_origins": ["https://app.example.com"],
        },
    }
    storage = dataclasses.replace(example_config.storage, path=str(tmp_path / "storage"))
    config = dataclasses.replace(example_config, sections=sections, storage=storage)
    async with serving(config, database) as client:
        status, document, _ = await client.get("/.well-known/oauth-protected-resource/mcp")
        assert (status, document["resource"], document["authorization_servers"]) == (
            200,
            "https://api.example.com/mcp",
            ["https://auth.example.com"],
        )
        call = modern("tools/call", {"name": "users_list"}, Origin="https://app.example.com")
        status, _, response = await client.post("/mcp", **call)
        assert status == 401
        assert response.headers["WWW-Authenticate"] == (
            'Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"'
        )


@pytest.mark.parametrize("mode", MODES)
async def test_an_org_scoped_tool_under_row_level_security(admin_client: Client, mode: str) -> None:
    status, body, _ = await admin_client.post(
        "/users", json={"email": "ann@example.com", "name": "Ann"}
    )
    assert status == 201, body
    ann = admin_client.as_(admin_client.token(body["user"]["id"]))
    status, body, _ = await ann.post("/orgs", json={"name": "Acme"})
    assert status == 201, body
    org = body["org"]["id"]
    status, body, _ = await ann.as_(x_org_id=org).post("/projects", json={"name": "Apollo"})
    assert status == 201, body
    token = ann.headers["Authorization"].removeprefix("Bearer ")
    url = admin_client.base + "/mcp"
    async with mcp_client(url, mode=mode, token=token) as mcp:
        by_argument = await mcp.call_tool("projects_list", {"org_id": org})
        without_org = await mcp.call_tool("projects_list", {})
    assert by_argument.structured_content is not None
    assert [p["name"] for p in by_argument.structured_content["projects"]] == ["Apollo"]
    assert without_org.is_error is True
    assert "(400 org_required;" in without_org.content[0].text
    async with mcp_client(url, mode=mode, token=token, headers={"x-org-id": org}) as mcp:
        by_header = await mcp.call_tool("projects_list", {})
    assert by_header.structured_content == by_argument.structured_content
