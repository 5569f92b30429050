"""How many claimed jobs a worker holds ready beyond its running ones, and the held
jobs themselves (pure: no database, no event loop)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Any


class Prefetch:
    """How many claimed jobs a worker holds ready beyond its running ones.

    A claim is a round trip; jobs that finish in less than that leave their slots
    idle until it returns. Holding ready the jobs the slots will start during one
    claim's round trip (concurrency × claim time / job time, from moving averages)
    keeps them busy. Long jobs get none: a job held here could have run on another
    worker, so nothing waits ready for longer than about one claim (Celery's
    prefetch, sized by measurement instead of a fixed multiplier).
    """

    SMOOTHING = 0.2  # weight of the newest sample in the moving averages
    LIMIT_FACTOR = 32  # never more than this many times the concurrency (see docs/jobs.md)

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.claim_seconds = 0.0
        self.job_seconds = 0.0

    def claimed(self, seconds: float) -> None:
        self.claim_seconds = self._average(self.claim_seconds, seconds)

    def ran(self, seconds: float) -> None:
        self.job_seconds = self._average(self.job_seconds, seconds)

    def _average(self, average: float, sample: float) -> float:
        return sample if average == 0.0 else average + self.SMOOTHING * (sample - average)

    def stalled(self, seconds: float) -> None:
        """Held jobs waited `seconds` for a slot: jobs are slow now; hold none until
        finishing jobs show otherwise."""
        self.job_seconds = max(self.job_seconds, seconds)

    @property
    def size(self) -> int:
        if self.claim_seconds == 0.0 or self.job_seconds == 0.0:
            return 0
        wanted = self.concurrency * self.claim_seconds / self.job_seconds
        return min(self.LIMIT_FACTOR * self.concurrency, int(wanted))


class ReadyJobs:
    """Claimed jobs waiting for a slot: the first in priority order out first.

    A job claimed again (its lease ran out while held, and it came back) replaces
    its older entry, whose claim is stale: it is never run twice from here.
    """

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []  # [order, sequence, held since, row, alive]
        self._entries: dict[int, list[Any]] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, job_id: int, order: Hashable, row: dict[str, Any], now: float) -> None:
        self.remove(job_id)
        entry = [order, next(self._sequence), now, row, True]
        self._entries[job_id] = entry
        heapq.heappush(self._heap, entry)

    def pop(self) -> dict[str, Any]:
        """The first job in order (the heap drops entries removed meanwhile)."""
        while True:
            entry = heapq.heappop(self._heap)
            if entry[4]:
                row: dict[str, Any] = entry[3]
                del self._entries[row["id"]]
                return row

    def remove(self, job_id: int) -> dict[str, Any] | None:
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return None
        entry[4] = False
        row: dict[str, Any] = entry[3]
        return row

    def rows(self) -> list[dict[str, Any]]:
        return [entry[3] for entry in self._entries.values()]

    def held_since_before(self, moment: float) -> list[dict[str, Any]]:
        """Remove and return the jobs held since before `moment`."""
        return self._remove_all([i for i, entry in self._entries.items() if entry[2] < moment])

    def keep_only(self, job_ids: set[int]) -> list[dict[str, Any]]:
        """Remove and return the jobs not in `job_ids` (their leases were lost)."""
        return self._remove_all([i for i in self._entries if i not in job_ids])

    def _remove_all(self, job_ids: list[int]) -> list[dict[str, Any]]:
        return [row for job_id in job_ids if (row := self.remove(job_id)) is not None]
