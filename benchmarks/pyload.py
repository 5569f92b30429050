"""A small HTTP load generator, for machines without wrk.

    python pyload.py URL SECONDS CONNECTIONS [BODY]

Keeps CONNECTIONS requests in flight for SECONDS (POSTing BODY as JSON when
given) and prints `[requests, p99_ms]` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def main(url: str, seconds: float, connections: int, body: str | None) -> None:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                if body is None:
                    response = await session.get(url)
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
    asyncio.run(
        main(
            sys.argv[1],
            float(sys.argv[2]),
            int(sys.argv[3]),
            sys.argv[4] if len(sys.argv) > 4 else None,
        )
    )
