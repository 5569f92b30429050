"""Background loops that stop when asked, even when a library swallowed the request.

A loop that catches `Exception` around a database round can lose its stop request:
when psycopg is cancelled mid-statement it asks the server to cancel, and an error
raised while doing so replaces the `CancelledError`. The task then stays
"cancelling" while it sleeps to its next round, and whoever awaits it (a shutdown,
a test's teardown) waits that long or forever. `pause` honours such a lost
request, and `stop` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

log = logging.getLogger("actions_server")

STOP_RETRY_SECONDS = 1.0
ERROR_PAUSE_SECONDS = 1.0  # after an unexpected error, before a loop tries again


def stop_requested() -> bool:
    """Whether the running task has been asked to stop (`Task.cancel`)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def pause(seconds: float) -> None:
    """Sleep between two rounds of a loop; raise CancelledError if a stop was asked."""
    if stop_requested():
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)


async def stop(tasks: Iterable[asyncio.Task[None]] | asyncio.Task[None]) -> None:
    """Cancel `tasks` and wait until each has ended, cancelling again if one swallowed it."""
    every = [tasks] if isinstance(tasks, asyncio.Task) else list(tasks)
    pending = set(every)
    rounds = 0
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=STOP_RETRY_SECONDS)
        rounds += 1
        if pending and rounds == 1:  # a loop that keeps swallowing its stop is a bug
            names = ", ".join(sorted(t.get_name() for t in pending))
            log.warning("still stopping after %gs: %s", STOP_RETRY_SECONDS, names)
    # Retrieve each outcome so asyncio never logs "exception was never retrieved".
    for task in every:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
