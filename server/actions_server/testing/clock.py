"""The test kit's clock: time that a test moves on by hand instead of sleeping.

It starts at the real time, so tokens and rows made outside the kit stay valid.
`await clock.advance(seconds)` moves it on: rate-limit windows (the guards read
this clock), token expiry (the app's verifier and issuer read it), and the
deadlines PostgreSQL keeps (KV TTLs, delayed jobs), which are moved back by as
much, since the database reads its own clock.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..db.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("queries.sql"))

Travel = Callable[[float], Awaitable[None]]


class ManualClock:
    """Seconds since the epoch: `clock()` reads it, `await clock.advance(s)` moves it on."""

    def __init__(self, now: float | None = None, travel: Travel | None = None) -> None:
        self.now = time.time() if now is None else now
        self._travel = travel

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves on: advance by 0 seconds or more")
        self.now += seconds
        if self._travel is not None:
            await self._travel(seconds)
