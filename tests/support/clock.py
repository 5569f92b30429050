"""A clock a test holds still and moves on by hand (`actions_server.clock.Clock`)."""

from __future__ import annotations


class ManualClock:
    """Seconds since the epoch, as the test says: `clock()` reads it, `advance()` moves it.

    It starts at a whole multiple of an hour, so every rate-limit window of a
    divisor of an hour (1 s, 2 s, 60 s, ...) begins exactly at the start.
    """

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
