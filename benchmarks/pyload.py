"""A small HTTP load generator, for machines without wrk.

    python pyload.py URL SECONDS CONNECTIONS [BODY [TOKEN]]

Keeps CONNECTIONS requests in flight for SECONDS (POSTing BODY as JSON when it
is not empty, with a bearer TOKEN when given) and prints `[requests, p99_ms]`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def main(
    url: str, seconds: float, connections: int, body: str | None, token: str | None
) -> None:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                if not body:
                    response = await session.get(url, headers=headers)
                else:
                    response = await session.post(url, data=body, headers=headers)
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(connections)))
    latencies.sort()
    print(json.dumps([len(latencies), latencies[int(len(latencies) * 0.99)] * 1000]))


if __name__ == "__main__":
    body = sys.argv[4] if len(sys.argv) > 4 else None
    token = sys.argv[5] if len(sys.argv) > 5 else None
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), body, token))
