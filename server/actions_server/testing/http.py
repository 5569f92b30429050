"""The app behind aiohttp's TestClient: the server `serve` runs, on a free port."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import BaseTestServer

from ..http.app import HttpFront, create_server
from ..runtime import Runtime


class AppServer(BaseTestServer):
    """What `aiohttp.test_utils.TestClient` needs: a runner for the app's server."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        self.runtime = runtime
        self.front: HttpFront | None = None
        super().__init__(**kwargs)

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        server, self.front = create_server(self.runtime)
        return web.ServerRunner(server, handle_signals=False)

    async def close(self) -> None:
        if self.front is not None:
            await self.front.close()
        await super().close()
