"""The baselines of benchmarks/http_overhead.py: the same two endpoints in plain aiohttp.

    python raw_aiohttp.py PORT [app|server|whole]

`app` (the default) is the usual `web.Application` with its router; `server`
is aiohttp's low-level `web.Server` with one handler that branches on the path,
which is what actions-server builds on. `whole` is `server` answering with
actions-server's `WholeResponse` instead of `web.Response`
(benchmarks/response_path.py). All use uvloop, as actions-server does.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvloop
from aiohttp import web

HELLO = {"message": "Hello, world!"}
HELLO_BODY = json.dumps(HELLO).encode()
JSON = {"Content-Type": "application/json"}


async def hello(request: web.BaseRequest) -> web.Response:
    return web.json_response(HELLO)


def whole_server() -> web.Server:
    from actions_server.http.whole import WholeResponse

    async def hello_whole(request: web.BaseRequest) -> web.Response:
        return WholeResponse(body=HELLO_BODY, headers=JSON)

    return web.Server(hello_whole)


async def echo(request: web.BaseRequest) -> web.Response:
    return web.json_response(await request.json())


async def low_level(request: web.BaseRequest) -> web.Response:
    if request.path == "/hello":
        return await hello(request)
    if request.path == "/echo" and request.method == "POST":
        return web.json_response(json.loads(await request.read()))
    return web.Response(status=404)


async def serve(port: int, kind: str) -> None:
    runner: web.BaseRunner
    if kind == "server":
        runner = web.ServerRunner(web.Server(low_level))
    elif kind == "whole":
        runner = web.ServerRunner(whole_server())
    else:
        app = web.Application()
        app.router.add_get("/hello", hello)
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "app"))
