"""The facts of one run, and the narrow view of `ctx` that facades and transports
get: a leaf, so that `ctx.queue`, `ctx.event`, `ctx.mail` and the run recorder
can be typed without importing `context.py`, which imports all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from .auth import AuthContext
    from .db.session import DbSession
    from .storage import Storage


class RunInfo(NamedTuple):
    """`ctx.run`: which run this is, for logs and idempotency.

    Immutable like the frozen dataclasses elsewhere, but a NamedTuple: one is
    made for every request, and built positionally it costs a third as much.
    """

    id: str
    trace_id: str
    action: str
    trigger: str  # api, cli, event, job, cron; join, channel (realtime)
    attempt: int = 1
    job_id: str | None = None
    parent_id: str | None = None


class JobPusher(Protocol):
    """What `ctx.mail` needs of `ctx.queue`."""

    async def push(self, name: str, payload: Any = None, *, priority: int = 0) -> int: ...


class RunScope(Protocol):
    """What a facade or a transport may use of the run it serves."""

    @property
    def run(self) -> RunInfo: ...

    @property
    def db(self) -> DbSession: ...

    @property
    def auth(self) -> AuthContext: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def queue(self) -> JobPusher: ...
