"""The rig's app, and a fleet of `actions-server` processes serving it.

The app has what the scale-out tests count: a write that pushes a job, emits an
event and publishes on a channel (`POST /orders`), a read, a signed webhook
(`POST /hooks/rig`, GitHub's scheme, run once per delivery id), a rate-limited
action, org-scoped notes behind Row-Level Security (in a transaction and
without one), a slow request, and optionally a cron tick every second. Every
effect is a row, so a test (or the chaos soak) can account for it exactly.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from support.apps import write_app
from support.processes import Served, free_port

WEBHOOK_SECRET = "rig-webhook-secret"

MIGRATION = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rig_app') THEN
        CREATE ROLE rig_app NOLOGIN;
    END IF;
END
$$;
GRANT rig_app TO CURRENT_USER;
CREATE TABLE orders (id bigserial PRIMARY KEY, ref text UNIQUE NOT NULL, job_id bigint);
CREATE TABLE effects (
    id bigserial PRIMARY KEY, ref text NOT NULL, kind text NOT NULL,
    job_id bigint, pid int NOT NULL
);
CREATE TABLE ticks (id bigserial PRIMARY KEY, fire_time timestamptz NOT NULL, pid int NOT NULL);
CREATE TABLE notes (id bigserial PRIMARY KEY, org_id text NOT NULL, body text NOT NULL);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_of_current_org ON notes
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT USAGE ON SCHEMA public TO rig_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rig_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rig_app;
"""

MANIFEST = """
module: rig
actions:
  - name: rig.order
    handler: PKG.handlers:order
    input: {type: object, required: [ref], properties: {ref: {type: string}}}
    triggers: [{api: POST /orders, status: 201}]
  - name: rig.read
    handler: PKG.handlers:read
    triggers: [{api: "GET /orders/:ref"}]
  - name: rig.fulfil
    handler: PKG.handlers:fulfil
    triggers: [{event: job.fulfil}]
  - name: rig.notify
    handler: PKG.handlers:notify
    triggers: [{event: order.placed}]
  - name: rig.limited
    handler: PKG.handlers:ok
    guards: [{rate_limit: {max: LIMIT, window_seconds: 3600, key: ip}}]
    triggers: [{api: GET /limited}]
  - name: rig.note
    handler: PKG.handlers:note
    triggers: [{api: POST /notes}]
  - name: rig.looseNote
    handler: PKG.handlers:note
    transaction: false
    triggers: [{api: POST /loose-notes}]
  - name: rig.slow
    handler: PKG.handlers:slow
    triggers: [{api: GET /slow}]
  - name: rig.sleep
    handler: PKG.handlers:sleep
    triggers: [{api: GET /sleep}]
  - name: rig.hook
    handler: PKG.handlers:hook
    triggers:
      - webhook: POST /hooks/rig
        verify: {scheme: github, secrets: [WEBHOOK_SECRET]}
  - name: rig.kv
    handler: PKG.handlers:kv
    triggers: [{api: POST /kv}]
channels:
  - name: "public:{topic}"
"""

CRON = """
module: rigcron
actions:
  - name: rig.tick
    handler: PKG.handlers:tick
    triggers: [{cron: "* * * * * *"}]
"""

HANDLERS = """
import asyncio, os

async def order(input, ctx):
    job_id = await ctx.queue.push("fulfil", {"ref": input["ref"]})
    ctx.event.emit("order.placed", {"ref": input["ref"]})
    await ctx.db.table("orders").insert({"ref": input["ref"], "job_id": int(job_id)})
    ctx.channel("public:orders").publish("placed", {"ref": input["ref"]})
    return {"ref": input["ref"], "job_id": str(job_id)}

async def read(input, ctx):
    return await ctx.db.table("orders").eq("ref", input["ref"]).single() or {}

async def fulfil(input, ctx):
    if os.environ.get("RIG_HOLD_JOBS"):  # this process holds its jobs until it is killed
        await asyncio.sleep(3600)
    await ctx.db.table("effects").insert(
        {"ref": input["ref"], "kind": "fulfil", "job_id": int(ctx.run.job_id), "pid": os.getpid()})

async def notify(input, ctx):
    await ctx.db.table("effects").insert(
        {"ref": input["ref"], "kind": "notify", "job_id": int(ctx.run.job_id), "pid": os.getpid()})

async def hook(input, ctx):
    await ctx.db.table("effects").insert({"ref": input["ref"], "kind": "hook", "pid": os.getpid()})
    return {"ok": True}

async def ok(input, ctx):
    return {"ok": True}

async def note(input, ctx):
    ctx.db.set_local("app.org_id", input["org"])

    async def insert():
        async with ctx.db.transaction():  # a savepoint, or (transaction: false) a transaction
            await ctx.db.raw("INSERT INTO notes (org_id, body) VALUES (%s, %s)", input["org"], input["body"])
            [row] = await ctx.db.raw("SELECT current_setting('app.org_id', true) AS org")
            assert row["org"] == input["org"], row

    # Several statements at once, as handlers may gather() them.
    rows, [who], _, _ = await asyncio.gather(
        ctx.db.raw("SELECT DISTINCT org_id FROM notes"),
        ctx.db.raw("SELECT current_user AS name, current_setting('app.org_id', true) AS org"),
        ctx.db.raw("SELECT 1 AS one"),
        insert(),
    )
    return {"seen": [r["org_id"] for r in rows], "user": who["name"], "org": who["org"]}

async def slow(input, ctx):
    await asyncio.sleep(float(input.get("seconds", "0.2")))
    return {"pid": os.getpid()}

async def sleep(input, ctx):
    await ctx.db.raw("SELECT pg_sleep(%s)", float(input["seconds"]))
    return {"slept": True}

async def kv(input, ctx):
    await ctx.kv.set(input["key"], input["value"])
    return {"value": await ctx.kv.get(input["key"]), "count": await ctx.kv.incr(input["key"] + ":n")}

async def tick(input, ctx):
    [job] = await ctx.db.raw("SELECT run_at FROM actions_server.jobs WHERE id = %s", int(ctx.run.job_id))
    await ctx.db.table("ticks").insert({"fire_time": job["run_at"], "pid": os.getpid()})
"""


def write_rig_app(
    folder: Path,
    *,
    limit: int = 10,
    cron: bool = False,
    kv: str = "{backend: postgres}",
    drain_seconds: float = 0,
    pool_max: int = 4,
    concurrency: int = 8,
    poll_seconds: float = 5,
    statement_timeout: float = 30,
    runs: bool = False,
) -> Path:
    """The rig's app under `folder`; DATABASE_URL (through PgBouncer) and LISTEN_URL
    (direct) come from the environment of each process."""
    manifests = {
        "rig.yaml": MANIFEST.replace("LIMIT", str(limit)).replace("WEBHOOK_SECRET", WEBHOOK_SECRET)
    }
    if cron:
        manifests["cron.yaml"] = CRON
    config, _ = write_app(
        folder,
        manifests,
        HANDLERS,
        migrations={"001_rig.sql": MIGRATION},
        config=(
            "app: rig\n"
            "database:\n"
            "  url: '${DATABASE_URL}'\n"
            "  listen_url: '${LISTEN_URL}'\n"
            "  transaction_pooling: true\n"
            "  role: rig_app\n"
            f"  statement_timeout_seconds: {statement_timeout}\n"
            f"  pool: {{min: 1, max: {pool_max}, acquire_timeout_seconds: 10}}\n"
            f"server: {{drain_seconds: {drain_seconds}, shutdown_grace_seconds: 10}}\n"
            f"queue: {{concurrency: {concurrency}, lease_seconds: 3,"
            f" poll_interval_seconds: {poll_seconds},"
            " shutdown_grace_seconds: 5}\n"
            f"kv: {kv}\n"
            f"runs: {{enabled: {str(runs).lower()}, sample_rate: 1}}\n"
            "dashboard: {enabled: false}\n"
        ),
    )
    return config


@dataclass
class Instance:
    name: str
    served: Served
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Fleet:
    """`serve --no-worker` instances and `worker` processes of one app, by name."""

    def __init__(self, config: Path, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = {**os.environ, **env}
        self.members: dict[str, Instance] = {}

    def serve(
        self, name: str, port: int | None = None, *, worker: bool = False, **env: str
    ) -> Instance:
        port = port or free_port()
        args = ["serve", str(self.config), "--port", str(port)]
        if not worker:
            args.append("--no-worker")
        return self._start(name, args, port, env)

    def worker(self, name: str, **env: str) -> Instance:
        return self._start(name, ["worker", str(self.config)], 0, env)

    def _start(self, name: str, args: list[str], port: int, env: Mapping[str, str]) -> Instance:
        log = self.config.parent / f"{name}.log"
        served = Served(args, self.config.parent, {**self.env, **env}, log)
        self.members[name] = instance = Instance(name, served, port)
        return instance

    def wait_healthy(self, seconds: float = 60) -> None:
        for instance in self.members.values():
            if instance.port:
                instance.served.wait_until_healthy(instance.base, seconds)

    def servers(self) -> Iterator[Instance]:
        return (m for m in self.members.values() if m.port)

    def stop(self) -> None:
        for instance in self.members.values():
            instance.served.terminate()
        for instance in self.members.values():
            # Past the wait it is killed; the test's result stands either way.
            with contextlib.suppress(subprocess.TimeoutExpired):
                instance.served.stop(30)
