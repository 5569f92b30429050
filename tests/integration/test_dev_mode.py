"""`actions-server dev`: the development server as a real process on the example app."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
from pathlib import Path

import pytest

from support.apps import REPO
from support.processes import CLI, Served, free_port

pytestmark = pytest.mark.integration


def get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.timeout(120)
def test_dev_server(database: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database}
    served = Served(["dev", "--port", str(port)], REPO, env, tmp_path / "dev.log")
    try:
        served.wait_until_healthy(f"http://127.0.0.1:{port}")
        banner = served.output()
        assert f"  Docs       http://127.0.0.1:{port}/docs" in banner
        assert f"  Dashboard  http://127.0.0.1:{port}/_dashboard  (no token needed" in banner
        assert f"  Metrics    http://127.0.0.1:{port}/metrics" in banner
        assert "  Token      actions-server token --user ID --role admin" in banner
        assert "watching . for changes" in banner  # reload is on

        home = get(port, "/")
        assert (home.status, home.headers["Location"]) == (307, "/docs")

        refused = get(port, "/users")
        trace_id = refused.headers["x-trace-id"]
        assert refused.status == 401

        assert get(port, "/_dashboard/").status == 200  # no token, from this machine
        # A proxy on this machine relays everybody: no open door through it.
        assert get(port, "/_dashboard/", {"X-Forwarded-For": "203.0.113.9"}).status == 401

        # The busy port is one line that names it, and no traceback.
        second = subprocess.run(
            [*CLI, "dev", "--port", str(port)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "Traceback" not in second.stdout + second.stderr
        assert second.stderr.strip().splitlines()[-1] == (
            f"error: port {port} on 127.0.0.1 is already in use: stop what listens there, "
            "or choose another port with --port"
        )
    finally:
        assert served.stop() == 0
    log = served.output()
    line = next(line for line in log.splitlines() if "GET /users 401" in line)
    assert re.fullmatch(
        rf"\d\d:\d\d:\d\d INFO    users\.list  GET /users 401 \d+ ms  trace_id={trace_id}", line
    ), line


@pytest.mark.timeout(120)
def test_serve_keeps_its_doors_shut(database: str, tmp_path: Path) -> None:
    """Without --dev, `/` is a 404 and the dashboard asks for a token, even on loopback."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database}
    served = Served(["serve", "--port", str(port)], REPO, env, tmp_path / "serve.log")
    try:
        served.wait_until_healthy(f"http://127.0.0.1:{port}")
        assert get(port, "/").status == 404
        assert get(port, "/_dashboard/").status == 401
        assert "development server ready" not in served.output()
    finally:
        served.stop()
