"""The facts of one run, and the narrow view of `ctx` that facades and transports
get: a leaf, so that `ctx.queue`, `ctx.event`, `ctx.mail` and the run recorder
can be typed without importing `context.py`, which imports all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .ids import new_run_id

if TYPE_CHECKING:
    from .auth import AuthContext
    from .db.session import DbSession
    from .storage import Storage


class RunInfo:
    """`ctx.run`: which run this is, for logs and idempotency.

    Read-only. The run id (a UUIDv7) is made on first use: most runs of a busy
    server are never stored and never read it, and making one costs about a
    microsecond.
    """

    __slots__ = ("_id", "action", "attempt", "job_id", "parent_id", "trace_id", "trigger")

    def __init__(
        self,
        id: str | None,
        trace_id: str,
        action: str,
        trigger: str,  # api, webhook, mcp, cli, event, job, cron, join, channel
        attempt: int = 1,
        job_id: str | None = None,
        parent_id: str | None = None,
    ) -> None:
        self._id = id
        self.trace_id = trace_id
        self.action = action
        self.trigger = trigger
        self.attempt = attempt
        self.job_id = job_id
        self.parent_id = parent_id

    @property
    def id(self) -> str:
        run_id = self._id
        if run_id is None:
            run_id = self._id = new_run_id()
        return run_id

    def __repr__(self) -> str:
        return f"<RunInfo {self.action} {self.trigger} trace={self.trace_id}>"


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
