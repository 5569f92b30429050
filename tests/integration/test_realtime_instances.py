"""Realtime channels across instances: two `actions-server serve` processes on one
database, sockets on one, publishes on the other."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from support.polling import eventually, query
from support.processes import Served, free_port, http
from support.realtime import join, receive, silent, token, write_realtime_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass
class Instance:
    served: Served
    base: str

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/realtime"

    def publish(self, **body: object) -> tuple[int, object]:
        return http("POST", self.base + "/publish", body)


def start(config: Path, dsn: str, name: str) -> Instance:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": dsn}
    served = Served(
        ["serve", str(config), "--port", str(port), "--no-worker"],
        config.parent,
        env,
        config.parent / f"{name}.log",
    )
    base = f"http://127.0.0.1:{port}"
    served.wait_until_healthy(base)
    return Instance(served, base)


@pytest.fixture
def instances(tmp_path: Path, empty_database: str) -> Iterator[tuple[Instance, Instance]]:
    config = write_realtime_app(tmp_path)
    a = start(config, empty_database, "a")
    b = start(config, empty_database, "b")
    try:
        yield a, b
    finally:
        for instance in (a, b):
            instance.served.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def listener_pid(dsn: str, instance: Instance) -> int | None:
    rows = query(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE %s",
        f"actions-server channels %:{instance.served.process.pid}:%",
    )
    return rows[0]["pid"] if rows else None


async def test_a_commit_on_b_reaches_a_within_a_second(
    instances: tuple[Instance, Instance], session: aiohttp.ClientSession
) -> None:
    a, b = instances
    async with session.ws_connect(a.ws_url) as ws:
        await join(ws, "public:news")
        assert b.publish(channel="public:news", event="rolled back", fail=True)[0] == 500
        published = time.monotonic()
        assert b.publish(channel="public:news", event="committed")[0] == 200
        message = await receive(ws, "message")
        assert time.monotonic() - published < 1.0
        assert message["event"] == "committed"
        await silent(ws, 0.5)
        # Beyond NOTIFY's 8,000 bytes: the payload lives in the table.
        b.publish(channel="public:news", event="big", size=100_000)
        message = await receive(ws, "message")
        assert (message["event"], len(message["payload"]["blob"])) == ("big", 100_000)


async def test_messages_published_while_the_listener_is_cut_off_arrive(
    instances: tuple[Instance, Instance], session: aiohttp.ClientSession, empty_database: str
) -> None:
    a, b = instances
    async with session.ws_connect(a.ws_url) as ws:
        await join(ws, "public:news")
        pid = listener_pid(empty_database, a)
        assert pid is not None
        query(empty_database, "SELECT pg_terminate_backend(%s)", pid)
        for n in range(5):
            assert b.publish(channel="public:news", event=f"during-{n}")[0] == 200
        events = [(await receive(ws, "message", within=15))["event"] for _ in range(5)]
        assert events == [f"during-{n}" for n in range(5)]
        assert await eventually(lambda: listener_pid(empty_database, a) not in (None, pid))
        assert "listener lost" in a.served.output()


async def test_presence_across_instances_and_a_killed_instance_leaves(
    instances: tuple[Instance, Instance], session: aiohttp.ClientSession
) -> None:
    a, b = instances
    async with session.ws_connect(
        a.ws_url, headers={"Authorization": f"Bearer {token('ann')}"}
    ) as on_a:
        await join(on_a, "org:acme:projects")
        assert list((await receive(on_a, "presence_state"))["payload"]) == ["ann"]
        on_b = await session.ws_connect(
            b.ws_url, headers={"Authorization": f"Bearer {token('cat')}"}
        )
        await join(on_b, "org:acme:projects")
        state = await receive(on_b, "presence_state")
        assert sorted(state["payload"]) == ["ann", "cat"]
        diff = await receive(on_a, "presence_diff")
        while "cat" not in diff["payload"]["joins"]:
            diff = await receive(on_a, "presence_diff")
        b.served.process.kill()  # kill -9: no goodbye
        b.served.process.wait()
        killed = time.monotonic()
        diff = await receive(on_a, "presence_diff", within=15)
        assert list(diff["payload"]["leaves"]) == ["cat"]
        # presence_timeout_seconds: 2, heartbeats every 0.5 s, and some slack for a busy host.
        assert time.monotonic() - killed < 4.5
        await on_b.close()


async def test_refused_joins_hear_nothing_and_an_expired_token_closes(
    instances: tuple[Instance, Instance], session: aiohttp.ClientSession
) -> None:
    a, b = instances
    async with (
        session.ws_connect(a.ws_url) as anonymous,
        session.ws_connect(a.ws_url, params={"token": token("bob")}) as outsider,
        session.ws_connect(a.ws_url, params={"token": token("ann", ttl=2)}) as short,
    ):
        assert (await join(anonymous, "org:acme:projects"))["error"]["code"] == "unauthenticated"
        assert (await join(outsider, "org:acme:projects"))["error"]["code"] == "forbidden"
        assert (await join(short, "org:acme:projects"))["status"] == "ok"
        assert b.publish(channel="org:acme:projects", event="secret")[0] == 200
        assert (await receive(short, "message"))["event"] == "secret"
        await silent(anonymous, 0.3)
        await silent(outsider, 0.3)
        while (message := await short.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert (message.type, message.data, message.extra) == (
            aiohttp.WSMsgType.CLOSE,
            4001,
            "token expired",
        )
