"""How many claimed jobs a worker holds ready beyond its running ones (pure)."""

from __future__ import annotations


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
    LIMIT_FACTOR = 4  # never more than this many times the concurrency

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

    @property
    def size(self) -> int:
        if self.claim_seconds == 0.0 or self.job_seconds == 0.0:
            return 0
        wanted = self.concurrency * self.claim_seconds / self.job_seconds
        return min(self.LIMIT_FACTOR * self.concurrency, int(wanted))
