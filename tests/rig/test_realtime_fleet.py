"""Realtime across instances: sockets connected through HAProxy land on all three
instances, and a publish made through any instance reaches every one of them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp
import pytest

from support.fleet import Fleet, write_rig_app
from support.polling import eventually
from support.processes import free_port, http
from support.realtime import join, receive
from support.rig import HAProxy, Urls

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_publish_through_one_instance_reaches_sockets_on_the_others(
    tmp_path: Path, urls: Urls
) -> None:
    config = write_rig_app(tmp_path / "app")
    fleet = Fleet(config, urls.env)
    ports = [free_port() for _ in range(3)]
    for i, port in enumerate(ports):
        fleet.serve(f"app{i}", port)
    front = HAProxy(tmp_path / "haproxy", ports)
    try:
        fleet.wait_healthy()
        front.start()
        base = f"http://127.0.0.1:{front.port}"
        assert await eventually(lambda: http("GET", base + "/readyz")[0] == 200)
        async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as stack:
            # Round-robin: six sockets, two on each instance.
            before = front.sessions()
            sockets = [
                await stack.enter_async_context(session.ws_connect(base + "/realtime"))
                for _ in range(6)
            ]
            after = front.sessions()
            assert {name: after[name] - before[name] for name in after} == dict.fromkeys(
                ("app0", "app1", "app2"), 2
            )
            for ws in sockets:
                assert (await join(ws, "public:orders"))["status"] == "ok"
            for n in range(3):  # each publish made by the next instance in turn
                async with session.post(base + "/orders", json={"ref": f"rt{n}"}) as response:
                    assert response.status == 201
            for ws in sockets:
                got = [
                    (await receive(ws, "message", within=10))["payload"]["ref"] for _ in range(3)
                ]
                assert sorted(got) == ["rt0", "rt1", "rt2"]
    finally:
        front.stop()
        fleet.stop()
