"""A rolling restart of three instances under steady load fails no request, POSTs included.

Behind HAProxy (health checks on /readyz every 500 ms, down after 2 failures),
behind HAProxy in TCP mode without retries (what a Kubernetes Service does: no
retry, kept-alive connections stay on their instance; without the drain this one
fails requests), and behind nginx (no active checks in the free nginx; a refused connection moves the
request to the next server, which nginx does even for a POST because nothing was
sent; a POST already sent is never retried). Each instance drains for 2 s on
SIGTERM (`server.drain_seconds`): /readyz answers 503 while requests are still
served, then it stops accepting, lets in-flight requests finish and exits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from support.fleet import Fleet, write_rig_app
from support.load import Load
from support.polling import eventually, query
from support.processes import free_port, http
from support.rig import HAProxy, Nginx, Urls

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DRAIN_SECONDS = 2
RATE = 100  # requests per second through the balancer


@pytest.mark.parametrize("balancer", ["haproxy", "haproxy-tcp", "nginx"])
async def test_a_rolling_restart_fails_no_request(
    balancer: str, tmp_path: Path, urls: Urls
) -> None:
    config = write_rig_app(tmp_path / "app", drain_seconds=DRAIN_SECONDS)
    fleet = Fleet(config, urls.env)
    ports = [free_port() for _ in range(3)]
    for i, port in enumerate(ports):
        fleet.serve(f"app{i}", port)
    fleet.worker("worker")
    if balancer == "nginx":
        front: HAProxy | Nginx = Nginx(tmp_path / balancer, ports)
    else:
        front = HAProxy(tmp_path / balancer, ports, mode="tcp" if "tcp" in balancer else "http")
    try:
        fleet.wait_healthy()
        front.start()
        base = f"http://127.0.0.1:{front.port}"
        assert await eventually(lambda: http("GET", base + "/readyz")[0] == 200)
        load = Load(base, RATE)
        load.start()
        await asyncio.sleep(2)
        for i, port in enumerate(ports):
            old = fleet.members[f"app{i}"].served
            old.terminate()
            assert await asyncio.to_thread(old.process.wait, 60) == 0
            new = fleet.serve(f"app{i}-restarted", port)
            await asyncio.to_thread(new.served.wait_until_healthy, new.base)
            await asyncio.sleep(2)  # HAProxy's checks bring it back (rise 2 × 500 ms)
            assert f"draining for {DRAIN_SECONDS}s" in old.output()
        tally = await load.stop()
    finally:
        front.stop()
        fleet.stop()
    assert tally.failures == [], tally.summary()
    assert tally.ok["write"] >= 300, tally.summary()  # the restart happened under load
    # Every acknowledged write is there, and its job and event ran once.
    refs = {r["ref"] for r in query(urls.direct, "SELECT ref FROM orders")}
    assert set(tally.acknowledged) <= refs
    assert len(refs) == len(tally.acknowledged)
