"""How every ASGI peer of benchmarks/http_peers.py is served.

uvicorn, one worker, with uvloop and httptools, as each peer's docs advise for
production; the access log off, as it is in the raw aiohttp baseline.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

# The secret and algorithm of benchmarks/app/config.yaml, whose token
# benchmarks/http_overhead.py sends.
SECRET = "benchmark-secret-that-is-long-enough-0123456789"
ALGORITHMS = ["HS256"]
PERMISSION = "profile:read"


def run(app: Any) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
    )
