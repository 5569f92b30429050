"""A small app with realtime channels, and WebSocket helpers for its tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from support.apps import write_app
from support.tokens import SECRET, claims, hs256

MIGRATION = """
CREATE TABLE organizations (id text PRIMARY KEY);
CREATE TABLE org_memberships (
    org_id text NOT NULL REFERENCES organizations (id),
    user_id text NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
INSERT INTO organizations VALUES ('acme'), ('globex');
INSERT INTO org_memberships VALUES ('acme', 'ann', 'member'), ('acme', 'cat', 'member'),
                                   ('globex', 'bob', 'member');
CREATE TABLE said (id serial PRIMARY KEY, org_id text, user_id text, text text);
"""

MANIFEST = """
module: rt
actions:
  - name: rt.publish
    handler: PKG.handlers:publish
    input:
      type: object
      required: [channel]
      properties:
        channel: {type: string}
        event: {type: string, default: ping}
        payload: {type: object}
        size: {type: integer}
        fail: {type: boolean}
        count: {type: integer}
    triggers: [{api: POST /publish}]
  - name: rt.savepoint
    handler: PKG.handlers:savepoint
    triggers: [{api: POST /savepoint}]
  - name: rt.later
    handler: PKG.handlers:later
    triggers: [{api: POST /later}]
  - name: rt.fromJob
    handler: PKG.handlers:from_job
    triggers: [{event: job.publishLater}]
  - name: rt.say
    handler: PKG.handlers:say
    guards: [authenticated, in_org]
    input:
      type: object
      required: [text, org_id]
      properties:
        text: {type: string, minLength: 1, maxLength: 100}
        org_id: {type: string}
      additionalProperties: false
    output:
      type: object
      properties: {id: {type: integer}}
channels:
  - name: "org:{org_id}:projects"
    guards: [authenticated, in_org]
    presence: true
  - name: "org:{org_id}:chat"
    guards: [authenticated, in_org]
    on_message: rt.say
  - name: "public:{topic}"
"""

HANDLERS = """
async def publish(input, ctx):
    payload = input.get("payload", {})
    if "size" in input:
        payload = {"blob": "x" * input["size"], "tail": "end"}
    for n in range(input.get("count", 1)):
        ctx.channel(input["channel"]).publish(input["event"], {**payload, "n": n} if "count" in input else payload)
    if input.get("fail"):
        raise RuntimeError("asked to fail after publishing")
    return {"published": True}

async def savepoint(input, ctx):
    try:
        async with ctx.db.transaction():
            ctx.channel("public:news").publish("dropped", {})
            raise ValueError("roll the savepoint back")
    except ValueError:
        pass
    ctx.channel("public:news").publish("kept", {})
    return {"ok": True}

async def later(input, ctx):
    await ctx.queue.push("publishLater", {"text": "from a job"})
    return {"ok": True}

async def from_job(input, ctx):
    ctx.channel("public:news").publish("job", {"text": input["text"], "trigger": ctx.run.trigger})

async def say(input, ctx):
    [row] = await ctx.db.table("said").insert(
        {"org_id": input["org_id"], "user_id": ctx.auth.user_id, "text": input["text"]}
    )
    ctx.channel(f"org:{input['org_id']}:chat").publish("said", {"user": ctx.auth.user_id, "text": input["text"]})
    return {"id": row["id"]}
"""

REALTIME = (
    "realtime: {presence_heartbeat_seconds: 0.5, presence_timeout_seconds: 2, "
    "heartbeat_timeout_seconds: 30}"
)


def write_realtime_app(folder: Path, realtime: str = REALTIME, extra: str = "") -> Path:
    config, _ = write_app(
        folder,
        {"rt.yaml": MANIFEST},
        HANDLERS,
        migrations={"001_rt.sql": MIGRATION},
        config=(
            "app: rt\n"
            "database: {url: '${DATABASE_URL}'}\n"
            f"auth: {{jwt: {{secret: {SECRET}, leeway_seconds: 0}}}}\n"
            f"{realtime}\n{extra}"
        ),
    )
    return config


def token(user: str, ttl: int = 600) -> str:
    now = int(time.time())
    return hs256(claims(user, iat=now, exp=now + ttl))


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 5) -> Any:
    """The next envelope of type `kind`, skipping others (presence chatter, say)."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {kind} within {within}s")
        message = await ws.receive(timeout=remaining)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a {kind}, the socket said {message.type.name}")
        data = message.json()
        if data["type"] == kind:
            return data


async def silent(
    ws: aiohttp.ClientWebSocketResponse, seconds: float, kind: str = "message"
) -> None:
    """Nothing of type `kind` arrives for `seconds`."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = await ws.receive(timeout=remaining)
        except TimeoutError:
            return
        if message.type == aiohttp.WSMsgType.TEXT:
            assert message.json()["type"] != kind, message.json()
        else:
            return


async def join(ws: aiohttp.ClientWebSocketResponse, topic: str, ref: str = "j") -> Any:
    await ws.send_json({"type": "join", "ref": ref, "topic": topic})
    return await receive(ws, "reply")
