"""The pure parts of MCP: tool names, the protocol ladder, the catalogue and who sees what."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from actions_server.auth import SYSTEM, USER_KIND, Auth, AuthContext, Principal
from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.errors import LoadError
from actions_server.guards import NOBODY, Caller
from actions_server.manifests.toolnames import tool_name_from, tool_name_problem
from actions_server.mcp.catalogue import Catalogue
from actions_server.mcp.protocol import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    UNSUPPORTED_VERSION,
    RpcError,
    decode_header_value,
    parse_message,
    protocol_of,
)
from actions_server.registry import Registry
from support.apps import write_app

META = "io.modelcontextprotocol/protocolVersion"


def test_tool_names() -> None:
    assert tool_name_from("users.list") == "users_list"
    assert tool_name_from("org-admin.members.invite") == "org-admin_members_invite"
    assert tool_name_problem("admin.tools.list") is None  # MCP allows dots
    assert tool_name_problem("DATA_EXPORT_v2") is None
    assert "no spaces" in (tool_name_problem("list users") or "")
    assert "MCP allows 128" in (tool_name_problem("x" * 129) or "")


BROKEN_TOOLS = """
module: tools
actions:
  - name: tools.badName
    handler: PKG.handlers:fine
    triggers: [{mcp: "list users"}]
  - name: tools.first
    handler: PKG.handlers:fine
    triggers: [{mcp: true}]
  - name: tools_first
    handler: PKG.handlers:fine
    triggers: [{mcp: true}]
  - name: tools.notAnObject
    handler: PKG.handlers:fine
    input: {type: array}
    triggers: [{mcp: true}]
  - name: tools.upload
    handler: PKG.handlers:fine
    input:
      type: object
      properties: {avatar: {type: string, format: binary}}
    triggers: [{mcp: upload}]
  - name: tools.titleOnCron
    handler: PKG.handlers:fine
    triggers: [{cron: "0 2 * * *", title: Nightly}]
  - name: tools.unknownHint
    handler: PKG.handlers:fine
    triggers: [{mcp: hinted, annotations: {read_only: true, safe: true}}]
  - name: tools.twoKinds
    handler: PKG.handlers:fine
    triggers: [{mcp: true, event: x}]
"""


def test_tool_problems_are_listed_with_file_and_line(tmp_path: Path) -> None:
    config, _ = write_app(
        tmp_path, {"tools.yaml": BROKEN_TOOLS}, "async def fine(input, ctx):\n    return 1\n"
    )
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config, env={}))
    assert [str(p) for p in caught.value.problems] == [
        "actions/tools.yaml:6: mcp: tool name 'list users' may hold only ASCII letters, digits, '_', '-' and '.' (no spaces)",
        "actions/tools.yaml:12: mcp: tool name 'tools_first' is already taken by 'tools.first' (actions/tools.yaml:9)",
        "actions/tools.yaml:16: mcp: an MCP tool's input must be an object: give the input schema `type: object` at its root",
        "actions/tools.yaml:22: mcp: input field 'avatar' is a file (format: binary); MCP cannot send files",
        "actions/tools.yaml:25: title applies only to mcp triggers",
        "actions/tools.yaml:28: actions[6].triggers[0].annotations: unknown key 'safe'",
        "actions/tools.yaml:31: a trigger has exactly one of api, webhook, event, cron, mcp (found event and mcp)",
    ]


def test_a_name_made_from_a_long_action_name_is_a_problem(tmp_path: Path) -> None:
    name = "a" * 130
    manifest = f"module: m\nactions:\n  - name: {name}\n    handler: PKG.handlers:h\n    triggers: [{{mcp: true}}]\n"
    config, _ = write_app(
        tmp_path, {"m.yaml": manifest}, "async def h(input, ctx):\n    return 1\n"
    )
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config, env={}))
    [problem] = caught.value.problems
    assert problem.line == 5
    assert problem.message.endswith("(made from the action's name; give one: mcp: NAME)")


def message(method: str, version: str | None = None, **params: Any) -> Any:
    if version is not None:
        params["_meta"] = {META: version}
    return parse_message({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})


def code_of(call: Any) -> int:
    with pytest.raises(RpcError) as caught:
        call()
    return caught.value.code


def test_the_revision_a_message_speaks() -> None:
    modern = message("tools/list", "2026-07-28")
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
    assert protocol_of(modern, headers, unnamed="2025-03-26") == "2026-07-28"
    assert protocol_of(modern, None, unnamed="2025-11-25") == "2026-07-28"  # stdio
    legacy = message("tools/list")
    assert protocol_of(legacy, {}, unnamed="2025-03-26") == "2025-03-26"
    assert protocol_of(legacy, None, unnamed="2025-06-18") == "2025-06-18"
    stated = {"MCP-Protocol-Version": "2025-11-25"}
    assert protocol_of(legacy, stated, unnamed="2025-03-26") == "2025-11-25"
    old = message("tools/list", "1900-01-01")
    assert code_of(lambda: protocol_of(old, None, unnamed="x")) == UNSUPPORTED_VERSION
    assert code_of(lambda: protocol_of(modern, {}, unnamed="x")) == HEADER_MISMATCH
    no_meta = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
    assert code_of(lambda: protocol_of(legacy, no_meta, unnamed="x")) == INVALID_PARAMS


def test_messages_that_are_not_requests() -> None:
    assert code_of(lambda: parse_message([])) == INVALID_REQUEST
    assert code_of(lambda: parse_message({"jsonrpc": "1.0", "method": "x"})) == INVALID_REQUEST
    bad_id = {"jsonrpc": "2.0", "id": None, "method": "tools/list"}
    assert code_of(lambda: parse_message(bad_id)) == INVALID_REQUEST
    bad_params = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}
    assert code_of(lambda: parse_message(bad_params)) == INVALID_PARAMS
    notification = parse_message({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert (notification.is_request, notification.id) == (False, None)
    reply = parse_message({"jsonrpc": "2.0", "id": 3, "result": {}})
    assert (reply.is_request, reply.method) == (False, None)


def test_header_values_in_the_base64_sentinel_form() -> None:
    assert decode_header_value("users_list") == "users_list"
    assert decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=") == "Hello, 世界"
    assert decode_header_value("=?base64?not base64!?=") is None


GUARDED = """
module: g
actions:
  - name: g.public
    handler: PKG.handlers:h
    triggers: [{mcp: true}]
  - name: g.readers
    handler: PKG.handlers:h
    guards: [authenticated, {has_permission: "things:read"}]
    triggers: [{mcp: true}]
  - name: g.admins
    handler: PKG.handlers:h
    guards: [{has_role: admin}]
    triggers: [{mcp: true}]
  - name: g.members
    handler: PKG.handlers:h
    guards: [authenticated, in_org, {has_permission: "projects:read"}]
    triggers: [{mcp: true}]
  - name: g.nightly
    handler: PKG.handlers:h
    run_as: system
    guards: [authenticated]
    triggers: [{mcp: true}]
"""


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[Registry, Auth]:
    config, _ = write_app(tmp_path, {"g.yaml": GUARDED}, "async def h(input, ctx):\n    return 1\n")
    loaded = load_config(config, env={})
    return load_app(loaded), Auth(loaded.auth)


def names(catalogue: Catalogue, auth: Auth, principal: Principal) -> list[str]:
    caller = Caller(principal=principal) if principal.is_authenticated else NOBODY
    listed = catalogue.listed(AuthContext(auth, principal), caller, modern=True)
    return [tool["name"] for tool in listed]


def test_who_sees_which_tools(guarded: tuple[Registry, Auth]) -> None:
    registry, auth = guarded
    catalogue = Catalogue(registry)
    assert catalogue.private is True
    everything = ["g_admins", "g_members", "g_nightly", "g_public", "g_readers"]
    assert names(catalogue, auth, Principal()) == everything  # anonymous: sign in to call
    plain = Principal(kind=USER_KIND, user_id="u")
    # g.members stays: the org membership may grant projects:read after in_org.
    assert names(catalogue, auth, plain) == ["g_members", "g_nightly", "g_public"]
    reader = Principal(kind=USER_KIND, user_id="u", permissions=frozenset({"things:read"}))
    assert "g_readers" in names(catalogue, auth, reader)
    admin = Principal(kind=USER_KIND, user_id="u", roles=frozenset({"admin"}))
    assert "g_admins" in names(catalogue, auth, admin)
    # The system principal passes identity guards only where the action says run_as: system.
    assert names(catalogue, auth, SYSTEM) == ["g_nightly", "g_public"]


def test_settings_fall_back_on_the_jwt_audience_and_issuer(tmp_path: Path) -> None:
    from actions_server.mcp.settings import McpSettings

    jwt = "{secret: " + "k" * 32 + ", audience: AUD, issuer: ISS}"
    cases = [
        (
            "https://api.example.com/mcp",
            "https://auth.example.com",
            "",
            "https://api.example.com/mcp",
            ("https://auth.example.com",),
        ),
        ("my-api", "my-issuer", "", None, ()),
        (
            "my-api",
            "https://a.example",
            "mcp: {resource: 'https://r.example/mcp', authorization_servers: ['https://b.example']}\n",
            "https://r.example/mcp",
            ("https://b.example",),
        ),
    ]
    for audience, issuer, extra, resource, servers in cases:
        text = (
            f"app: s\nauth: {{jwt: {jwt.replace('AUD', audience).replace('ISS', issuer)}}}\n{extra}"
        )
        (tmp_path / "config.yaml").write_text(text)
        settings = McpSettings.from_config(load_config(tmp_path / "config.yaml", env={}))
        assert (settings.resource, settings.authorization_servers) == (resource, servers)
        # no version anywhere: actions-server's own
        assert settings.server_info == {"name": "s", "version": version("actions-server")}
