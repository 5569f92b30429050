"""MCP against real processes: two `serve` instances on one database answering one
client's alternating requests, and `actions-server mcp` on stdio."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from actions_server.auth import TokenIssuer
from actions_server.config import Config
from support.apps import REPO, write_app
from support.mcp_clients import MODES, RoundRobin, mcp_client
from support.polling import eventually, query
from support.processes import CLI, Served, free_port, http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ADMIN_ID = "00000000-0000-4000-8000-00000000ad01"


@pytest.fixture
def example_app(tmp_path: Path) -> Path:
    """The example app in a folder of its own (its local storage lives there)."""
    for name in ("actions", "schemas", "migrations", "templates"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def app_env(database: str) -> dict[str, str]:
    """The environment of a process of the example app on `database`, with the
    development secret the tests sign with."""
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    return {**env, "DATABASE_URL": database}


async def test_two_instances_answer_one_clients_alternating_requests(
    example_app: Path, database: str, example_config: Config
) -> None:
    ports = [free_port(), free_port()]
    instances = [
        Served(
            ["serve", "config.yaml", "--port", str(port), "--no-worker"],
            example_app,
            app_env(database),
            example_app / f"serve-{port}.log",
        )
        for port in ports
    ]
    try:
        for port, served in zip(ports, instances, strict=True):
            served.wait_until_healthy(f"http://127.0.0.1:{port}")
        token = TokenIssuer(example_config.auth.jwt).issue(ADMIN_ID, roles=("admin",))
        status, body = http(
            "POST",
            f"http://127.0.0.1:{ports[0]}/users",
            {"email": "lb@example.com", "name": "Lb"},
            token=token,
        )
        assert status == 201, body
        for mode in MODES:
            balancer = RoundRobin(ports)
            url = f"http://127.0.0.1:{ports[0]}/mcp"
            async with mcp_client(url, mode=mode, token=token, transport=balancer) as mcp:
                assert [t.name for t in (await mcp.list_tools()).tools] == [
                    "projects_list",
                    "users_list",
                ]
                for _ in range(3):
                    result = await mcp.call_tool("users_list", {})
                    assert result.is_error is False, result.content
                    assert result.structured_content is not None
                    assert result.structured_content["total"] == 1
            # The handshake (or the discover probe) went to one instance and the
            # requests after it alternated: no instance needed another's memory.
            assert balancer.ports_used[:4] == [ports[0], ports[1], ports[0], ports[1]]
    finally:
        codes = [served.stop() for served in instances]
    assert codes == [0, 0], [served.output() for served in instances]

    def runs() -> list[dict[str, Any]]:
        return query(
            database, "SELECT count(*) AS n FROM actions_server.runs WHERE trigger = 'mcp'"
        )

    assert (await eventually(lambda: runs()[0]["n"] == 6)) is True


def stdio_server(app: Path, database: str, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "actions_server.cli", "mcp", "config.yaml", "--no-migrate", *args],
        env={"DATABASE_URL": database},
        cwd=app,
    )


@pytest.mark.parametrize("mode", MODES)
async def test_the_sdk_over_stdio(example_app: Path, database: str, mode: str) -> None:
    stderr = example_app / "stderr.log"
    admin = stdio_server(example_app, database, "--user", ADMIN_ID, "--role", "admin")
    with stderr.open("w") as errlog:
        from mcp.client.stdio import stdio_client

        async with Client(stdio_client(admin, errlog=errlog), mode=mode, cache=None) as mcp:
            assert (mcp.protocol_version == "2026-07-28") == (mode == "auto")
            assert [t.name for t in (await mcp.list_tools()).tools] == [
                "projects_list",
                "users_list",
            ]
            result = await mcp.call_tool("users_list", {"limit": 3})
            assert result.is_error is False
            assert result.structured_content == {"users": [], "total": 0, "limit": 3, "offset": 0}
            invalid = await mcp.call_tool("users_list", {"limit": 0})
            assert invalid.is_error is True
            assert "/limit: 0 is less than the minimum of 1" in invalid.content[0].text
    assert "MCP on stdio: 2 tools" in stderr.read_text()

    anonymous = stdio_server(example_app, database)
    with stderr.open("w") as errlog:
        from mcp.client.stdio import stdio_client

        async with Client(stdio_client(anonymous, errlog=errlog), mode=mode, cache=None) as mcp:
            refused = await mcp.call_tool("users_list", {})
    # No headers, no tokens on stdio: a missing caller is a result like any refusal.
    assert refused.is_error is True
    assert refused.content[0].text.startswith("authentication required")


STRAY_OUTPUT_APP = """
module: chatty
actions:
  - name: chatty.hello
    handler: PKG.handlers:hello
    triggers: [{mcp: true}]
"""

STRAY_OUTPUT_HANDLERS = """
import logging, subprocess, sys

async def hello(input, ctx):
    print("a print from a handler")
    subprocess.run(["echo", "a child process's output"], check=True)
    logging.getLogger("chatty").warning("a log line")
    [row] = await ctx.db.raw("SELECT 41 + 1 AS answer")
    return {"answer": row["answer"]}
"""


def test_stdout_carries_protocol_frames_only(tmp_path: Path, database: str) -> None:
    config, _ = write_app(
        tmp_path,
        {"chatty.yaml": STRAY_OUTPUT_APP},
        STRAY_OUTPUT_HANDLERS,
        config="app: chatty\ndatabase: {url: '${DATABASE_URL}'}\n",
    )
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25"},
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "chatty_hello"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}},
        "not json at all",
    ]
    stdin = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    with (tmp_path / "stderr.log").open("w") as errlog:
        done = subprocess.run(
            [*CLI, "mcp", str(config)],
            input=stdin.encode(),
            stdout=subprocess.PIPE,
            stderr=errlog,
            cwd=tmp_path,
            env=app_env(database),
            timeout=60,
            check=False,
        )
    stderr = (tmp_path / "stderr.log").read_text()
    assert done.returncode == 0, stderr
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    by_id = {answer.get("id"): answer for answer in answers}
    assert sorted(by_id, key=str) == [1, 2, 3, None]
    assert by_id[1]["result"]["protocolVersion"] == "2025-11-25"
    call = by_id[2]["result"]
    assert (call["isError"], call["content"][0]["text"]) == (False, '{"answer":42}')
    assert [tool["name"] for tool in by_id[3]["result"]["tools"]] == ["chatty_hello"]
    assert by_id[None]["error"]["code"] == -32700
    for stray in ("a print from a handler", "a child process's output", "a log line"):
        assert stray in stderr
