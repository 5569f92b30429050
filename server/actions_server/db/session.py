"""`ctx.db`: one run's database session and its query builder.

The session takes a pooled connection on first use, not before, so an action
that never touches the database pays no round trip. In a transactional run
(the default) that first use opens the run's transaction; `finish()` commits it
when the handler returned and rolls it back when it raised. Everything the run
writes through `ctx.db` (and, later, its events and jobs) shares that one
transaction. `transaction()` nests a savepoint inside it.

A run's role and settings (`set_local`) last as long as its transaction. A run
without one (`transaction: false`) sets them for the session and resets them
before the connection goes back, except through a transaction pooler, where a
session is not the run's to keep: there each of its own statements runs in a
short transaction that sets them locally first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from psycopg import sql
from psycopg.pq import TransactionStatus

from ..errors import ActionsServerError
from .pool import Connection, Cursor, Database, FirstStatementFailed
from .query import Order, Query, QueryError
from .statements import Statement, send

Row = dict[str, Any]

# The session whose `transaction()` block the current task (and the tasks it
# gathers) is inside: its statements run in that block, not wrapped on their own.
_BLOCK: ContextVar[DbSession | None] = ContextVar("actions_server_db_block", default=None)


class TransactionAborted(ActionsServerError):
    """The run swallowed a database error; its transaction can only roll back."""


class DbSession:
    """The database as one run sees it (`ctx.db`)."""

    __slots__ = (
        "_conn",
        "_database",
        "_jobs",
        "_opening",
        "_pending",
        "_role",
        "_savepoint_marks",
        "_session_level",
        "_transactional",
        "_wrapped",
        "_wrapping",
    )

    def __init__(
        self,
        database: Database,
        *,
        transactional: bool = True,
        role: str | None = None,
        jobs: bool = False,
    ) -> None:
        self._database = database
        self._jobs = jobs  # a worker's run: connections come from the jobs pool
        self._transactional = transactional
        # Through a transaction pooler, a run without a transaction wraps its statements.
        self._wrapped = database.transaction_pooling and not transactional
        self._wrapping: asyncio.Lock | None = None  # one wrapped transaction at a time
        self._role = role
        self._conn: Connection | None = None
        self._pending: dict[str, str] = {}
        self._session_level: set[str] = set()  # settings to reset before the connection goes back
        self._opening: asyncio.Lock | None = None
        self._savepoint_marks: list[Callable[[], Callable[[], None]]] = []

    @property
    def used(self) -> bool:
        return self._conn is not None

    def set_local(self, name: str, value: str) -> None:
        """Set a PostgreSQL setting (`app.user_id`, `app.org_id`) for the rest of the run.

        It is sent with the next statement (with the run's BEGIN when that comes
        first), through `set_config`, never spliced into SQL text. In a
        transactional run it lasts until the transaction ends; otherwise it is
        reset before the connection returns to the pool.
        """
        self._pending[name] = value

    async def connection(self) -> Connection:
        """The run's connection (opening the run's transaction on first use)."""
        conn = self._conn
        if conn is None:
            # Handlers may gather() several queries: only one of them may open the
            # run's connection, or the others' work would land outside the run.
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                conn = self._conn
                if conn is None:
                    with self._pending_kept():
                        conn = self._conn = await self._database.acquire(
                            begin=self._transactional,
                            setup=self._setup(first=True),
                            jobs=self._jobs,
                        )
                    return conn
        if self._pending:
            for statement, params in self._setup(first=False):
                await conn.execute(statement, params)
        return conn

    @contextlib.contextmanager
    def _pending_kept(self) -> Iterator[None]:
        """Keep the settings not yet sent should acquiring fail (no connection, or the
        database down): a handler that catches that and tries again still has them."""
        pending = dict(self._pending)
        try:
            yield
        except FirstStatementFailed:
            raise  # sent: the run holds the connection now
        except BaseException:
            self._pending = {**pending, **self._pending}
            raise

    def _setup(self, *, first: bool) -> list[Statement]:
        if self._wrapped:
            return []  # sent by _local_setup inside each statement's own transaction
        statements: list[Statement] = []
        local = self._transactional
        if first and self._role:
            verb = "SET LOCAL ROLE {}" if local else "SET ROLE {}"
            statements.append((sql.SQL(verb).format(sql.Identifier(self._role)), None))
            if not local:
                self._session_level.add("role")
        if self._pending:
            calls = sql.SQL(", ").join(sql.SQL("set_config(%s, %s, %s)") for _ in self._pending)
            params: list[Any] = []
            for name, value in self._pending.items():
                params += [name, value, local]
                if not local:
                    self._session_level.add(name)
            statements.append((sql.SQL("SELECT ") + calls, params))
            self._pending = {}
        return statements

    def _local_setup(self) -> list[Statement]:
        """The run's role and settings for one transaction (a wrapped run's statement)."""
        statements: list[Statement] = list(self._database.run_setup)
        if self._role:
            statements.append(
                (sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self._role)), None)
            )
        if self._pending:
            calls = sql.SQL(", ").join(sql.SQL("set_config(%s, %s, true)") for _ in self._pending)
            params = [part for item in self._pending.items() for part in item]
            statements.append((sql.SQL("SELECT ") + calls, params))
        return statements

    async def finish(self, *, commit: bool) -> None:
        """End the run: commit or roll back its transaction and give the connection back."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._transactional:
                if commit and conn.info.transaction_status == TransactionStatus.INERROR:
                    # A statement failed and the handler carried on: PostgreSQL would
                    # answer COMMIT with a silent rollback. Say so instead.
                    await conn.execute("ROLLBACK")
                    raise TransactionAborted(
                        "a database error was caught and ignored inside the run, which aborted "
                        "its transaction; nothing was saved (use ctx.db.transaction() to recover "
                        "from an expected error)"
                    )
                if commit:
                    await conn.commit()  # psycopg's own COMMIT: no cursor, a third of the CPU
                else:
                    await conn.execute("ROLLBACK")
            elif self._session_level:
                await self._reset(conn)
        finally:
            await self._database.release(conn, self._database.run_pool(jobs=self._jobs))

    async def _reset(self, conn: Connection) -> None:
        """Undo session-level settings, so the next run on this connection starts clean."""
        names = sorted(self._session_level - {"role"})
        if "role" in self._session_level:
            await conn.execute("RESET ROLE")
        if names:
            calls = sql.SQL(", ").join(sql.SQL("set_config(%s, '', false)") for _ in names)
            await conn.execute(sql.SQL("SELECT ") + calls, names)
        self._session_level.clear()

    # --- the public API ------------------------------------------------------

    def table(self, name: str) -> TableQuery:
        """A query on `name` (`"users"` or `"schema.users"`)."""
        return TableQuery(self, Query(table=name))

    from_ = table

    async def raw(self, query: str, *args: Any, **kwargs: Any) -> list[Row]:
        """Run parameterised SQL (`%s` with positional values or `%(name)s` with named)."""
        if args and kwargs:
            raise QueryError("raw() takes positional or named parameters, not both")
        # raw() exists to run the handler author's own SQL text; values stay parameters.
        return await self.execute(query, kwargs or args or None)

    def on_savepoint(self, mark: Callable[[], Callable[[], None]]) -> None:
        """Have `mark()` called as each savepoint opens; its result undoes, should it roll back.

        For run state kept outside the database until commit (emitted events),
        so that it is rolled back together with the savepoint's rows.
        """
        self._savepoint_marks.append(mark)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A savepoint inside the run's transaction: rolled back alone if the block raises."""
        conn = await self.connection()
        undo = [mark() for mark in self._savepoint_marks]
        try:
            if self._wrapped and _BLOCK.get() is not self:
                # A run without a transaction, through a transaction pooler: the block is
                # a transaction that sets the run's role and settings first, and the
                # run's other statements wait for it (they would land in it or after it).
                async with self._wrap_lock():
                    token = _BLOCK.set(self)
                    try:
                        async with conn.transaction():
                            await self._send_local_setup(conn)
                            yield
                    finally:
                        _BLOCK.reset(token)
            else:
                async with conn.transaction():
                    yield
        except BaseException:
            for step in reversed(undo):
                step()
            raise

    async def execute(self, query: sql.Composed | str, params: Any) -> list[Row]:
        """Run one statement of the run; the first one goes out with BEGIN and the
        settings, in one round trip (Database.acquire_with)."""
        if self._conn is None and not self._wrapped:
            cursor = await self._first(query, params)
            if cursor is not None:
                return await cursor.fetchall() if cursor.description is not None else []
        conn = await self.connection()
        if self._wrapped and _BLOCK.get() is not self:
            # A run without a transaction, through a transaction pooler: this statement
            # in a short transaction of its own, one at a time (under gather(), one that
            # saw another's transaction open could run after its COMMIT, unset).
            async with self._wrap_lock(), conn.transaction():
                await self._send_local_setup(conn)
                cursor = await conn.execute(query, params)
                return await cursor.fetchall() if cursor.description is not None else []
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description is not None else []

    def _wrap_lock(self) -> asyncio.Lock:
        if self._wrapping is None:
            self._wrapping = asyncio.Lock()
        return self._wrapping

    async def _send_local_setup(self, conn: Connection) -> None:
        setup = self._local_setup()
        if setup:
            await send(conn, setup)

    async def _first(self, query: sql.Composed | str, params: Any) -> Cursor | None:
        """Take the run's connection (opening its transaction, if it has one) with
        `query` as its first statement; None when another statement of the run (a
        gather()) took it first."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._conn is not None:
                return None
            try:
                with self._pending_kept():
                    conn, cursor = await self._database.acquire_with(
                        self._setup(first=True),
                        query,
                        params,
                        begin=self._transactional,
                        jobs=self._jobs,
                    )
            except FirstStatementFailed as failed:
                self._conn = failed.conn  # finish() rolls it back and gives it back
                raise failed.error from None
            self._conn = conn
            if cursor is None:  # it could not go with BEGIN: it goes now, the run's own
                cursor = await conn.execute(query, params)
            return cursor


class TableQuery:
    """The chainable, awaitable builder returned by `ctx.db.table(name)`.

    Calls chain in any order and each returns a new builder; nothing runs until
    it is awaited (`await q`, `q.exec()`, `q.single()`, `q.count()`).
    """

    __slots__ = ("_query", "_session")

    def __init__(self, session: DbSession, query: Query) -> None:
        self._session = session
        self._query = query

    def _with(self, query: Query) -> TableQuery:
        return TableQuery(self._session, query)

    def _filter(self, column: str, operator: str, value: Any = None) -> TableQuery:
        return self._with(self._query.filtered(column, operator, value))

    @property
    def query(self) -> Query:
        return self._query

    # columns and shape

    def select(self, *columns: str) -> TableQuery:
        names = column_names(columns)
        return self._with(self._query.with_(columns=names))

    def order(self, column: str, desc: bool = False, nulls_first: bool | None = None) -> TableQuery:
        order = Order(column, desc, nulls_first)
        return self._with(self._query.with_(orders=(*self._query.orders, order)))

    def limit(self, count: int) -> TableQuery:
        return self._with(self._query.with_(limit=_non_negative("limit", count)))

    def offset(self, count: int) -> TableQuery:
        return self._with(self._query.with_(offset=_non_negative("offset", count)))

    def returning(self, *columns: str) -> TableQuery:
        names = column_names(columns)
        return self._with(self._query.with_(returning=names))

    # filters

    def eq(self, column: str, value: Any) -> TableQuery:
        return (
            self._filter(column, "is_null") if value is None else self._filter(column, "eq", value)
        )

    def neq(self, column: str, value: Any) -> TableQuery:
        if value is None:
            return self._filter(column, "is_not_null")
        return self._filter(column, "neq", value)

    def gt(self, column: str, value: Any) -> TableQuery:
        return self._filter(column, "gt", value)

    def gte(self, column: str, value: Any) -> TableQuery:
        return self._filter(column, "gte", value)

    def lt(self, column: str, value: Any) -> TableQuery:
        return self._filter(column, "lt", value)

    def lte(self, column: str, value: Any) -> TableQuery:
        return self._filter(column, "lte", value)

    def like(self, column: str, pattern: str) -> TableQuery:
        return self._filter(column, "like", pattern)

    def ilike(self, column: str, pattern: str) -> TableQuery:
        return self._filter(column, "ilike", pattern)

    def in_(self, column: str, values: Sequence[Any]) -> TableQuery:
        if isinstance(values, str | bytes):
            raise QueryError("in_() takes a list of values, not a string")
        return self._filter(column, "in", tuple(values))

    def is_null(self, column: str, is_null: bool = True) -> TableQuery:
        return self._filter(column, "is_null" if is_null else "is_not_null")

    # writes

    def insert(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> TableQuery:
        return self._with(self._query.with_(operation="insert", rows=_rows(rows)))

    def upsert(
        self,
        rows: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        on_conflict: str | Sequence[str] = "id",
    ) -> TableQuery:
        conflict = column_names((on_conflict,) if isinstance(on_conflict, str) else on_conflict)
        return self._with(
            self._query.with_(operation="upsert", rows=_rows(rows), conflict=conflict)
        )

    def update(self, changes: Mapping[str, Any]) -> TableQuery:
        return self._with(self._query.with_(operation="update", changes=dict(changes)))

    def delete(self) -> TableQuery:
        return self._with(self._query.with_(operation="delete"))

    def all_rows(self) -> TableQuery:
        """Allow update() or delete() without a filter: every row of the table."""
        return self._with(self._query.with_(all_rows=True))

    # running

    async def exec(self) -> list[Row]:
        """Run it; the rows (for writes, the RETURNING rows: every column by default)."""
        text, params = self._query.render()
        return await self._session.execute(text, params)

    async def single(self) -> Row | None:
        """The first row, or None. A select fetches at most one row."""
        query = self._query
        if query.operation == "select" and query.limit is None:
            query = query.with_(limit=1)
        text, params = query.render()
        rows = await self._session.execute(text, params)
        return rows[0] if rows else None

    async def count(self) -> int:
        """How many rows match the filters (limit, offset and order are ignored)."""
        text, params = self._query.render_count()
        rows = await self._session.execute(text, params)
        return int(rows[0]["count"])

    def __await__(self) -> Generator[Any, None, list[Row]]:
        return self.exec().__await__()

    def __repr__(self) -> str:
        return f"<TableQuery {self._query.operation} {self._query.table!r}>"


def column_names(specs: Iterable[str]) -> tuple[str, ...]:
    """Column names given one by one or comma-separated (`"id, name"`), as the seed does."""
    return tuple(c.strip() for spec in specs for c in spec.split(",") if c.strip())


def _rows(rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    if isinstance(rows, Mapping):
        return (rows,)
    return tuple(rows)


def _non_negative(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise QueryError(f"{name}() takes a whole number ≥ 0, not {value!r}")
    return value
