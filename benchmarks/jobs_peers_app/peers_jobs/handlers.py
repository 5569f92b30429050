"""Handlers of benchmarks/jobs_peers.py. The drain's two are PgQueuer's, line for line.

BENCH_OUT names the file `append` writes and the latency handlers note their
waits in (one line each: `job|event pushed-at started-at`, epoch seconds).
"""

import os
import time
from typing import Any

OUT = os.environ.get("BENCH_OUT", os.devnull)


async def append(input: dict[str, Any], ctx: Any) -> None:
    with open(OUT, "a") as file:  # noqa: ASYNC230 - the job: one blocking append, as in PgQueuer's
        file.write(f"{input['n']} {time.time()}\n")


async def insert(input: dict[str, Any], ctx: Any) -> None:
    await ctx.db.raw("INSERT INTO bench_rows (n) VALUES (%s)", input["n"])


async def push(input: dict[str, Any], ctx: Any) -> None:
    await ctx.queue.push("latency", {"t": time.time()})


async def emit(input: dict[str, Any], ctx: Any) -> None:
    ctx.event.emit("peers.latency", {"t": time.time()})


def _note(kind: str, since: float) -> None:
    started = time.time()
    with open(OUT, "a") as file:
        file.write(f"{kind} {since!r} {started!r}\n")


async def pushed(input: dict[str, Any], ctx: Any) -> None:
    _note("job", input["t"])


async def emitted(input: dict[str, Any], ctx: Any) -> None:
    _note("event", input["t"])
