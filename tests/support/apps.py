"""Throwaway apps written to a temporary folder, served on a real socket.

Each app gets a unique top-level package for its handlers, because Python
caches imported modules by name for the whole test session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from actions_server.builtins import load_app
from actions_server.clock import SYSTEM_CLOCK, Clock
from actions_server.config import Config, load_config
from actions_server.http.app import HttpFront, create_server
from actions_server.queue.prefetch import Prefetch
from actions_server.queue.worker import Worker
from actions_server.registry import Registry
from actions_server.runtime import Runtime, open_runtime

REPO = Path(__file__).resolve().parents[2]


def write_app(
    folder: Path,
    manifests: dict[str, str],
    handlers: str = "",
    *,
    config: str = "",
    schemas: dict[str, str] | None = None,
    migrations: dict[str, str] | None = None,
) -> tuple[Path, str]:
    """Write an app; returns (config path, handler package name).

    Manifests and handlers may say `PKG` where the handler package's name goes.
    """
    package = f"app_{uuid.uuid4().hex[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / package).mkdir()
    (folder / package / "__init__.py").write_text("")
    (folder / package / "handlers.py").write_text(textwrap.dedent(handlers).replace("PKG", package))
    (folder / "actions").mkdir(exist_ok=True)
    for name, text in manifests.items():
        (folder / "actions" / name).write_text(textwrap.dedent(text).replace("PKG", package))
    for sub, files in (("schemas", schemas), ("migrations", migrations)):
        (folder / sub).mkdir(exist_ok=True)
        for name, text in (files or {}).items():
            (folder / sub / name).write_text(textwrap.dedent(text))
    body = textwrap.dedent(config) or "app: test-app\n"
    (folder / "config.yaml").write_text(body)
    return folder / "config.yaml", package


class Client:
    """A thin HTTP client bound to one server's base URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        runtime: Runtime,
        headers: dict[str, str] | None = None,
        *,
        front: HttpFront | None = None,
    ) -> None:
        self.session = session
        self.base = base
        self.runtime = runtime
        self.headers = headers or {}
        self.front = front

    def as_(self, token: str | None = None, **headers: str) -> Client:
        """The same server, sending `Authorization: Bearer token` and other headers."""
        extra = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            extra["Authorization"] = f"Bearer {token}"
        headers = {**self.headers, **extra}
        return Client(self.session, self.base, self.runtime, headers, front=self.front)

    def token(
        self,
        user_id: str,
        *,
        roles: tuple[str, ...] = (),
        permissions: tuple[str, ...] = (),
        ttl_seconds: int = 600,
    ) -> str:
        """A token signed with the served app's key."""
        issuer = self.runtime.executor.auth.issuer
        return issuer.issue(user_id, roles=roles, permissions=permissions, ttl_seconds=ttl_seconds)

    async def request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        kwargs["headers"] = {**self.headers, **kwargs.get("headers", {})}
        async with self.session.request(method, self.base + path, **kwargs) as response:
            raw = await response.read()
            body: Any = None
            if raw and response.content_type == "application/json":
                body = await response.json()
            elif raw:
                body = raw.decode()
            return response.status, body, response

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("DELETE", path, **kw)


@asynccontextmanager
async def working(
    client: Client, prefetch: Prefetch | None = None, **queue: Any
) -> AsyncIterator[Worker]:
    """Run a job worker for the served app until the block ends (queue settings overridable)."""
    runtime = client.runtime
    config = dataclasses.replace(runtime.config.queue, **queue)
    worker = Worker(
        runtime.executor, runtime.database, config, dsn=runtime.listen_dsn, prefetch=prefetch
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


@asynccontextmanager
async def serving(
    config: Config | Path,
    dsn: str,
    *,
    registry: Registry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[Client]:
    """Serve the app on 127.0.0.1 (a real socket) against `dsn` and yield a client.

    The server is the one `create_server` makes, as `serve` uses it: its
    connection handling (protocol errors, header timeout, connection cap) is
    what the tests see. `clock` cuts the app's rate-limit windows (a
    `support.clock.ManualClock` holds them still).
    """
    if not isinstance(config, Config):
        config = load_config(config, env={})
    registry = registry or load_app(config)
    async with open_runtime(config, registry, dsn=dsn, clock=clock) as runtime:
        server, front = create_server(runtime)
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            async with aiohttp.ClientSession() as session:
                yield Client(session, f"http://{host}:{port}", runtime, front=front)
        finally:
            await front.close()
            await runner.cleanup()
