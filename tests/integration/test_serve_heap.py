"""A serving process keeps what it made at start-up out of the garbage collector's scans."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.apps import write_app
from support.processes import Served, free_port, http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MANIFEST = """
module: h
actions:
  - name: h.heap
    handler: PKG.handlers:heap
    triggers: [{api: GET /heap}]
"""

HANDLERS = """
import gc

async def heap(input, ctx):
    return {"frozen": gc.get_freeze_count()}
"""


def test_serve_freezes_its_start_up_heap(tmp_path: Path, empty_database: str) -> None:
    config, _ = write_app(
        tmp_path,
        {"h.yaml": MANIFEST},
        HANDLERS,
        config="app: h\ndatabase: {url: '${DATABASE_URL}'}\n",
    )
    port = free_port()
    served = Served(
        ["serve", str(config), "--port", str(port)],
        tmp_path,
        {**os.environ, "DATABASE_URL": empty_database},
        tmp_path / "serve.log",
    )
    try:
        served.wait_until_healthy(f"http://127.0.0.1:{port}")
        status, body = http("GET", f"http://127.0.0.1:{port}/heap")
    finally:
        assert served.stop() == 0
    assert status == 200
    # Modules, the registry and compiled schemas: far more than a few thousand objects.
    assert body["frozen"] > 10_000
