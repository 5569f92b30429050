"""Default deadlines for runs, enforced by one task instead of a timer per run.

A run without its own `timeout_seconds` still must not run forever: HTTP runs get
`server.action_timeout_seconds`, a worker's runs `queue.action_timeout_seconds`.
`asyncio.timeout` would cost every request about 4 µs (a timer scheduled and
cancelled); the watchdog costs a dict insert and a pop, and one task that looks
every `CHECK_INTERVAL_SECONDS` for runs past their deadline and cancels them. A
default deadline is therefore kept to within about that interval, which is
plenty for a limit of a minute; a manifest's own `timeout_seconds` stays exact.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import loops

CHECK_INTERVAL_SECONDS = 0.5


class Watchdog:
    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._fired: set[asyncio.Task[Any]] = set()
        self._checker: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[Any], seconds: float) -> None:
        """Cancel `task` once `seconds` have passed, unless `forget` comes first."""
        self._deadlines[task] = time.monotonic() + seconds
        if self._checker is None:
            self._checker = asyncio.get_running_loop().create_task(
                self._check(), name="run-watchdog"
            )

    def forget(self, task: asyncio.Task[Any]) -> None:
        self._deadlines.pop(task, None)
        self._fired.discard(task)

    def fired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the watchdog cancelled `task` (its run passed its deadline)."""
        return task in self._fired

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[task]
                    self._fired.add(task)
                    task.cancel()

    async def close(self) -> None:
        checker, self._checker = self._checker, None
        if checker is not None:
            await loops.stop(checker)
