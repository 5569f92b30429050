"""The baseline of benchmarks/db_bound.py: the same two statements, hand-written with
aiohttp and psycopg_pool (autocommit, a pool of the same size), on uvloop.

    python raw_db.py PORT DSN POOL_SIZE
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import uvloop
from aiohttp import web
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def serve(port: int, dsn: str, size: int) -> None:
    pool = AsyncConnectionPool(
        dsn, min_size=size, max_size=size, open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
    )  # fmt: skip
    await pool.open(wait=True)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def create(request: web.Request) -> web.Response:
        data = orjson.loads(await request.read())
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO items (name) VALUES (%s) RETURNING id, name", (data["name"],)
            )
            row = await cursor.fetchone()
        return web.Response(body=orjson.dumps(row), status=201, content_type="application/json")

    async def get(request: web.Request) -> web.Response:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, name FROM items WHERE id = %s", (int(request.match_info["id"]),)
            )
            row = await cursor.fetchone()
        if row is None:
            return web.Response(status=404)
        return web.Response(body=orjson.dumps(row), content_type="application/json")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/items", create)
    app.router.add_get("/items/{id}", get)
    app.router.add_get("/items-autocommit/{id}", get)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
