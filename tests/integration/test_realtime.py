"""Realtime channels in one process: joins through the guards, transactional
publishes, the protocol's limits (the cross-instance behaviour is in
test_realtime_instances.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from actions_server.builtins import load_app
from actions_server.config import Config, load_config
from actions_server.maintenance import run_maintenance
from actions_server.realtime import store
from support.apps import Client, serving, working
from support.polling import connect, eventually, query
from support.realtime import join, receive, silent, token, write_realtime_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def app_config(folder: Path, **realtime: object) -> Config:
    config = load_config(write_realtime_app(folder), env={"DATABASE_URL": "unused"})
    return dataclasses.replace(config, realtime=dataclasses.replace(config.realtime, **realtime))


@pytest.fixture
async def client(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    async with serving(app_config(tmp_path), empty_database) as c:
        yield c


def socket(client: Client, token_: str | None = None, **params: str) -> object:
    headers = {"Authorization": f"Bearer {token_}"} if token_ else {}
    return client.session.ws_connect(client.base + "/realtime", headers=headers, params=params)


async def test_a_committed_publish_arrives_and_a_rolled_back_one_never(client: Client) -> None:
    async with socket(client) as ws:
        assert (await join(ws, "public:news"))["status"] == "ok"
        status, _, _ = await client.post(
            "/publish", json={"channel": "public:news", "event": "gone", "fail": True}
        )
        assert status == 500
        status, _, _ = await client.post(
            "/publish", json={"channel": "public:news", "event": "hello", "payload": {"a": 1}}
        )
        assert status == 200
        message = await receive(ws, "message")
        assert message == {
            "type": "message",
            "topic": "public:news",
            "event": "hello",
            "payload": {"a": 1},
        }
        await silent(ws, 0.5)


async def test_a_savepoint_that_rolls_back_drops_its_messages(client: Client) -> None:
    async with socket(client) as ws:
        await join(ws, "public:news")
        assert (await client.post("/savepoint"))[0] == 200
        assert (await receive(ws, "message"))["event"] == "kept"
        await silent(ws, 0.5)


async def test_a_job_publishes_too(client: Client) -> None:
    async with socket(client) as ws, working(client):
        await join(ws, "public:news")
        assert (await client.post("/later"))[0] == 200
        message = await receive(ws, "message", within=10)
        assert message["payload"] == {"text": "from a job", "trigger": "job"}


async def test_a_large_payload_arrives_intact(client: Client) -> None:
    async with socket(client) as ws:
        await join(ws, "public:big")
        await client.post("/publish", json={"channel": "public:big", "size": 100_000})
        message = await receive(ws, "message")
        assert message["payload"]["blob"] == "x" * 100_000
        assert message["payload"]["tail"] == "end"


async def test_messages_of_one_run_arrive_in_order(client: Client) -> None:
    async with socket(client) as ws:
        await join(ws, "public:order")
        await client.post("/publish", json={"channel": "public:order", "count": 50})
        seen = [(await receive(ws, "message"))["payload"]["n"] for _ in range(50)]
        assert seen == list(range(50))


async def test_only_the_joined_channel_is_heard(client: Client) -> None:
    async with socket(client) as ws:
        await join(ws, "public:a")
        await client.post("/publish", json={"channel": "public:b"})
        await client.post("/publish", json={"channel": "public:a", "event": "mine"})
        assert (await receive(ws, "message"))["event"] == "mine"


async def test_publishing_to_an_undeclared_channel_is_a_handler_bug(client: Client) -> None:
    status, body, _ = await client.post("/publish", json={"channel": "nowhere:x"})
    assert (status, body["error"]["code"]) == (500, "internal_error")


# --- joining -----------------------------------------------------------------------------


async def test_a_join_without_a_token_is_refused(client: Client) -> None:
    async with socket(client) as ws:
        reply = await join(ws, "org:acme:projects", ref="7")
        assert reply["ref"] == "7"
        assert reply["topic"] == "org:acme:projects"
        assert reply["status"] == "error"
        assert reply["error"]["code"] == "unauthenticated"


async def test_a_join_of_another_org_is_refused_and_hears_nothing(client: Client) -> None:
    async with socket(client, token("bob")) as ws:
        reply = await join(ws, "org:acme:projects")
        assert (reply["status"], reply["error"]["code"]) == ("error", "forbidden")
        await client.post("/publish", json={"channel": "org:acme:projects"})
        await silent(ws, 0.5)
        reply = await join(ws, "org:nope:projects")
        assert reply["error"]["code"] == "org_not_found"


async def test_a_member_joins_and_the_join_is_recorded(client: Client, empty_database: str) -> None:
    async with socket(client, token("ann")) as ws:
        assert (await join(ws, "org:acme:projects"))["status"] == "ok"
        state = await receive(ws, "presence_state")
        assert list(state["payload"]) == ["ann"]
        await client.post("/publish", json={"channel": "org:acme:projects", "event": "created"})
        assert (await receive(ws, "message"))["event"] == "created"
    runs = await eventually(
        lambda: query(
            empty_database,
            "SELECT action, trigger, status, user_id, org_id, input FROM actions_server.runs "
            "WHERE trigger = 'join'",
        )
    )
    assert runs == [
        {
            "action": "channel:org:{org_id}:projects",
            "trigger": "join",
            "status": "ok",
            "user_id": "ann",
            "org_id": "acme",
            "input": {"org_id": "acme"},
        }
    ]


async def test_token_by_query_or_first_message(client: Client) -> None:
    async with socket(client, None, token=token("ann")) as ws:
        assert (await join(ws, "org:acme:chat"))["status"] == "ok"
    async with socket(client) as ws:
        await ws.send_json({"type": "auth", "ref": "a", "token": token("ann")})
        reply = await receive(ws, "reply")
        assert (reply["status"], reply["response"]) == ("ok", {"user_id": "ann"})
        assert (await join(ws, "org:acme:chat"))["status"] == "ok"
        await ws.send_json({"type": "auth", "ref": "b", "token": token("bob")})
        reply = await receive(ws, "reply")
        assert reply["error"]["code"] == "user_mismatch"


async def test_a_bad_token_at_the_upgrade_is_401(client: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        async with socket(client, "not-a-token"):
            pass
    assert caught.value.status == 401


async def test_an_expired_token_closes_the_socket(client: Client) -> None:
    async with socket(client, token("ann", ttl=2)) as ws:
        assert (await join(ws, "org:acme:chat"))["status"] == "ok"
        started = time.monotonic()
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "token expired")
        assert time.monotonic() - started < 5


async def test_a_revoked_token_closes_the_socket(client: Client) -> None:
    from actions_server.auth.revocation import revoke_user

    async with socket(client, token("ann")) as ws:
        assert (await join(ws, "org:acme:chat"))["status"] == "ok"
        await asyncio.sleep(1.05)  # iat counts whole seconds: revoke in a later one
        async with client.runtime.database.pool.connection() as conn:
            await revoke_user(conn, "ann")
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "token revoked")


async def test_unknown_and_malformed(client: Client) -> None:
    async with socket(client) as ws:
        reply = await join(ws, "nothing:here")
        assert (reply["error"]["code"], reply["topic"]) == ("unknown_channel", "nothing:here")
        await ws.send_str("not json")
        assert (await receive(ws, "reply"))["error"]["code"] == "invalid_message"
        await ws.send_json({"type": "leave", "ref": "l", "topic": "public:x"})
        assert (await receive(ws, "reply"))["error"]["code"] == "not_joined"
        await ws.send_json({"type": "heartbeat", "ref": "h"})
        assert (await receive(ws, "reply"))["status"] == "ok"
        assert (await join(ws, "public:x"))["status"] == "ok"
        assert (await join(ws, "public:x"))["error"]["code"] == "already_joined"
        await ws.send_json({"type": "leave", "ref": "l", "topic": "public:x"})
        assert (await receive(ws, "reply"))["status"] == "ok"
        await ws.send_json({"type": "message", "ref": "m", "topic": "public:x", "payload": {}})
        assert (await receive(ws, "reply"))["error"]["code"] == "not_joined"


# --- messages from clients ----------------------------------------------------------------


async def test_a_message_runs_the_channels_action(client: Client, empty_database: str) -> None:
    async with socket(client, token("ann")) as ws:
        await join(ws, "org:acme:chat")
        await ws.send_json(
            {"type": "message", "ref": "s", "topic": "org:acme:chat", "payload": {"text": "hi"}}
        )
        # The reply and the published message race each other (the commit wakes the listener).
        both = {m["type"]: m for m in [(await ws.receive_json(timeout=5)) for _ in range(2)]}
        assert both["message"]["payload"] == {"user": "ann", "text": "hi"}
        reply = both["reply"]
        assert (reply["ref"], reply["status"], reply["response"]) == ("s", "ok", {"id": 1})
        # The action's own schema: an unknown key is refused.
        await ws.send_json(
            {"type": "message", "ref": "t", "topic": "org:acme:chat", "payload": {"x": 1}}
        )
        reply = await receive(ws, "reply")
        assert reply["error"]["code"] == "validation_failed"
        # The channel's parameters win over the payload's: no writing into another org.
        await ws.send_json(
            {
                "type": "message",
                "ref": "u",
                "topic": "org:acme:chat",
                "payload": {"text": "sneaky", "org_id": "globex"},
            }
        )
        reply = await receive(ws, "reply")
        assert reply["status"] == "ok"
    assert [r["org_id"] for r in query(empty_database, "SELECT org_id FROM said")] == [
        "acme",
        "acme",
    ]


async def test_a_channel_without_on_message_only_receives(client: Client) -> None:
    async with socket(client) as ws:
        await join(ws, "public:x")
        await ws.send_json({"type": "message", "ref": "m", "topic": "public:x", "payload": {}})
        assert (await receive(ws, "reply"))["error"]["code"] == "receive_only"


# --- presence in one process ---------------------------------------------------------------


async def test_presence_state_and_diffs(client: Client) -> None:
    async with socket(client, token("ann")) as ann:
        await join(ann, "org:acme:projects")
        await receive(ann, "presence_state")
        async with socket(client, token("cat")) as cat:
            await join(cat, "org:acme:projects")
            state = await receive(cat, "presence_state")
            assert sorted(state["payload"]) == ["ann", "cat"]
            diff = await receive(ann, "presence_diff")
            while "cat" not in diff["payload"]["joins"]:
                diff = await receive(ann, "presence_diff")
            [meta] = diff["payload"]["joins"]["cat"]["metas"]
            assert set(meta) == {"ref", "online_at"}
        diff = await receive(ann, "presence_diff")
        assert list(diff["payload"]["leaves"]) == ["cat"]
        assert diff["payload"]["leaves"]["cat"]["metas"] == [meta]


# --- limits --------------------------------------------------------------------------------


async def test_limits(tmp_path: Path, empty_database: str) -> None:
    config = app_config(
        tmp_path,
        max_sockets=2,
        max_channels_per_socket=2,
        messages_per_second=5,
        max_message_bytes=1024,
    )
    async with (
        serving(config, empty_database) as client,
        socket(client) as first,
        socket(client) as second,
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            async with socket(client):
                pass
        assert caught.value.status == 503
        await join(first, "public:1")
        await join(first, "public:2")
        assert (await join(first, "public:3"))["error"]["code"] == "too_many_channels"
        for n in range(10):
            await second.send_json({"type": "heartbeat", "ref": str(n)})
        codes = [(await receive(second, "reply")).get("error", {}).get("code") for _ in range(10)]
        assert codes.count("rate_limited") >= 4
        await second.send_str('{"type": "heartbeat", "pad": "' + "x" * 2000 + '"}')
        message = await second.receive(timeout=5)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1009)


async def test_a_silent_client_is_closed(tmp_path: Path, empty_database: str) -> None:
    config = app_config(tmp_path, heartbeat_timeout_seconds=1.5)
    async with serving(config, empty_database) as client, socket(client) as ws:
        await join(ws, "public:x")
        message = await ws.receive(timeout=10)
        assert (message.type, message.data, message.extra) == (
            aiohttp.WSMsgType.CLOSE,
            4000,
            "heartbeat missed",
        )


async def test_a_membership_taken_away_takes_the_socket_out(
    tmp_path: Path, empty_database: str
) -> None:
    config = app_config(tmp_path, reauthorize_seconds=0.5)
    async with serving(config, empty_database) as client, socket(client, token("ann")) as ws:
        await join(ws, "org:acme:chat")
        query(empty_database, "DELETE FROM org_memberships WHERE user_id = 'ann'")
        notice = await receive(ws, "leave", within=10)
        assert (notice["topic"], notice["error"]["code"]) == ("org:acme:chat", "forbidden")
        await client.post("/publish", json={"channel": "org:acme:chat"})
        await silent(ws, 0.5)
    recorded = query(
        empty_database, "SELECT count(*) AS n FROM actions_server.runs WHERE trigger = 'join'"
    )
    assert recorded == [{"n": 1}]  # the re-checks are not recorded


async def test_closing_the_server_says_going_away(tmp_path: Path, empty_database: str) -> None:
    async with serving(app_config(tmp_path), empty_database) as client:
        ws = await client.session.ws_connect(client.base + "/realtime")
        await join(ws, "public:x")
        front = client.front
        assert front is not None
        closing = asyncio.create_task(front.close())
        message = await ws.receive(timeout=5)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await ws.close()
        await closing


async def test_maintenance_prunes_old_messages(client: Client, empty_database: str) -> None:
    await client.post("/publish", json={"channel": "public:news", "event": "recent"})
    query(
        empty_database,
        "INSERT INTO actions_server.channel_messages (xid, channel, kind, event, payload, created_at)"
        " VALUES (pg_current_xact_id(), 'public:news', 'message', 'old', '{}',"
        " now() - interval '61 minutes')",
    )
    async with await connect(empty_database) as conn:
        pruned = await run_maintenance(conn, client.runtime.config)
    assert pruned["channel messages"] == 1
    rows = query(empty_database, "SELECT event FROM actions_server.channel_messages")
    assert rows == [{"event": "recent"}]


async def test_a_token_in_the_url_is_not_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    secret = token("ann")
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with socket(client, None, token=secret) as ws:
            await join(ws, "public:x")
        await eventually(lambda: "/realtime" in caplog.text)
    assert "GET /realtime?token=%5Bredacted%5D HTTP/1.1" in caplog.text
    assert secret not in caplog.text


async def test_a_message_committed_after_a_later_one_still_arrives(
    client: Client, empty_database: str
) -> None:
    """Ids are taken in order but become visible in commit order (see realtime/cursor.py)."""
    front = client.front
    assert front is not None
    assert front.realtime is not None
    async with socket(client) as ws:
        await join(ws, "public:news")
        slow = await psycopg.AsyncConnection.connect(empty_database)  # in a transaction
        rolled_back = await psycopg.AsyncConnection.connect(empty_database)
        try:
            for conn, event in ((slow, "slow"), (rolled_back, "never")):
                await store.publish(
                    conn,  # type: ignore[arg-type]
                    [store.Outgoing(channel="public:news", event=event, payload="{}")],
                )
            await client.post("/publish", json={"channel": "public:news", "event": "fast"})
            assert (await receive(ws, "message"))["event"] == "fast"
            cursor = front.realtime.feed.cursor
            assert cursor is not None
            assert len(cursor.awaited) == 2
            await slow.commit()
            assert (await receive(ws, "message"))["event"] == "slow"
            await rolled_back.rollback()
            assert await eventually(lambda: not cursor.awaited)
            await silent(ws, 0.5)
        finally:
            await slow.close()
            await rolled_back.close()


async def test_an_instance_declared_gone_comes_back_with_its_presences(
    client: Client, empty_database: str
) -> None:
    async with socket(client, token("ann")) as ws:
        await join(ws, "org:acme:projects")
        await receive(ws, "presence_state")
        # What another instance's reaper does when this one is cut off for too long.
        query(empty_database, "DELETE FROM actions_server.channel_instances")
        query(empty_database, "DELETE FROM actions_server.channel_presence")
        diff = await receive(ws, "presence_diff", within=10)
        while "ann" not in diff["payload"]["joins"]:
            diff = await receive(ws, "presence_diff", within=10)
    rows = await eventually(
        lambda: query(empty_database, "SELECT key FROM actions_server.channel_presence") == []
    )
    assert rows  # leaving on close removed it again


async def test_a_new_registry_changes_the_channels(tmp_path: Path, empty_database: str) -> None:
    """What `serve --reload` does: new joins use the new channels, and a socket in a
    channel that is gone is taken out at its next re-check."""
    config = app_config(tmp_path, reauthorize_seconds=0.5)
    async with serving(config, empty_database) as client, socket(client) as ws:
        await join(ws, "public:news")
        assert (await join(ws, "lobby"))["error"]["code"] == "unknown_channel"
        manifest = tmp_path / "actions" / "rt.yaml"
        manifest.write_text(
            manifest.read_text().replace('  - name: "public:{topic}"', '  - name: "lobby"')
        )
        front = client.front
        assert front is not None
        front.use_registry(load_app(config))
        assert (await join(ws, "lobby"))["status"] == "ok"
        notice = await receive(ws, "leave", within=10)
        assert (notice["topic"], notice["error"]["code"]) == ("public:news", "unknown_channel")
