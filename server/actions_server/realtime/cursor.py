"""Where the listener is in the stream of messages: pure bookkeeping over ids.

Message ids come from a sequence, so they are handed out in order but become
visible in commit order: a reader that has seen id 11 may still see id 10
later, when its (slower) transaction commits. So the cursor keeps the highest
id delivered (`high`) and the ids below it not seen yet (`awaited`), each with
the snapshot's `xmax` under which it was first missed.

When can an awaited id no longer appear? Its writer took its transaction id
before the row's id (queries.sql, `publish`), and that row id was taken before
the higher one that was visible; so the writer's transaction id is below that
snapshot's `xmax`. Once a later snapshot's `xmin` (the oldest transaction still
running) is at or past that `xmax`, the writer has ended: committed, and then
its row is in that very read, or rolled back, and it never will be. A long
transaction elsewhere on the server (in any database: transaction ids are the
cluster's) only keeps an id awaited longer; it never holds back the delivery
of anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

MAX_AWAITED = 10_000  # beyond this the oldest are given up (a huge rolled-back batch)


class Row(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=Row)


class Cursor:
    __slots__ = ("awaited", "high")

    def __init__(self, high: int) -> None:
        self.high = high
        self.awaited: dict[int, int] = {}  # id → xmax of the snapshot that first missed it

    def take(self, rows: Sequence[R], xmin: int, xmax: int, *, complete: bool) -> list[R]:
        """The rows of one read (in id order, under a snapshot of `xmin`/`xmax`) that are
        new; `complete` says the read was not cut short by its limit."""
        fresh = []
        for row in rows:
            if row.id > self.high:
                for missing in range(max(self.high + 1, row.id - MAX_AWAITED), row.id):
                    self.awaited[missing] = xmax
                self.high = row.id
                fresh.append(row)
            elif self.awaited.pop(row.id, None) is not None:
                fresh.append(row)
        if complete and self.awaited:
            for missing, seen_under in list(self.awaited.items()):
                if xmin >= seen_under:
                    del self.awaited[missing]  # its writer has ended without it
        if len(self.awaited) > MAX_AWAITED:
            for missing in sorted(self.awaited)[: len(self.awaited) - MAX_AWAITED]:
                del self.awaited[missing]
        return fresh
