"""SIGTERM with `server.drain_seconds`: not ready, still serving, then a graceful exit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from support.fleet import Fleet, write_rig_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_draining_instance_says_not_ready_serves_on_and_closes_connections(
    tmp_path: Path, empty_database: str
) -> None:
    config = write_rig_app(tmp_path, drain_seconds=3)
    fleet = Fleet(config, {"DATABASE_URL": empty_database, "LISTEN_URL": empty_database})
    instance = fleet.serve("a")
    try:
        fleet.wait_healthy()
        async with aiohttp.ClientSession() as session:
            async with session.get(instance.base + "/readyz") as response:
                assert response.status == 200
                assert response.headers.get("Connection", "").lower() != "close"
            # A request in flight when SIGTERM comes, on a kept-alive connection.
            slow = asyncio.create_task(session.get(instance.base + "/slow?seconds=1"))
            await asyncio.sleep(0.3)
            instance.served.terminate()
            await asyncio.sleep(0.3)
            async with await slow as response:
                assert response.status == 200
                assert response.headers["Connection"].lower() == "close"
            async with session.get(instance.base + "/readyz") as response:
                assert response.status == 503
                assert (await response.json())["status"] == "draining"
                assert response.headers["Connection"].lower() == "close"
            async with session.post(instance.base + "/orders", json={"ref": "late"}) as response:
                assert response.status == 201  # still served, writes included
        assert instance.served.process.wait(30) == 0
        assert "draining for 3s" in instance.served.output()
    finally:
        fleet.stop()


def test_without_drain_seconds_sigterm_stops_at_once(tmp_path: Path, empty_database: str) -> None:
    config = write_rig_app(tmp_path)
    fleet = Fleet(config, {"DATABASE_URL": empty_database, "LISTEN_URL": empty_database})
    instance = fleet.serve("a")
    try:
        fleet.wait_healthy()
        instance.served.terminate()
        started = time.monotonic()
        assert instance.served.process.wait(30) == 0
        assert "draining" not in instance.served.output()
        assert time.monotonic() - started < 20  # generous: no drain was asked for
    finally:
        fleet.stop()
