"""The query builder's SQL, as pure values: a `Query` renders to (SQL, params).

Every identifier goes through `psycopg.sql.Identifier` and every value is a
bound parameter, so no input ever becomes SQL text. A Query is immutable: each
builder call returns a new one, so a partly built query can be reused without
one use leaking filters into another. `update()` and `delete()` with no filter
refuse to render unless `all_rows()` was called: a forgotten `.eq()` must not
rewrite a whole table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from psycopg import sql

from ..errors import ActionsServerError

Operation = Literal["select", "insert", "update", "upsert", "delete"]

_COMPARISONS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
}


class QueryError(ActionsServerError):
    """A query that cannot be rendered as asked; a bug in the calling handler."""


@dataclass(frozen=True, slots=True)
class Filter:
    column: str
    operator: str  # a key of _COMPARISONS, "in", "is_null", "is_not_null"
    value: Any = None


@dataclass(frozen=True, slots=True)
class Order:
    column: str
    descending: bool
    nulls_first: bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    table: str
    operation: Operation = "select"
    columns: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    orders: tuple[Order, ...] = ()
    limit: int | None = None
    offset: int | None = None
    rows: tuple[Mapping[str, Any], ...] = ()
    changes: Mapping[str, Any] = field(default_factory=dict)
    conflict: tuple[str, ...] = ()
    returning: tuple[str, ...] | None = None
    all_rows: bool = False

    def with_(self, **changes: Any) -> Query:
        return replace(self, **changes)

    def filtered(self, column: str, operator: str, value: Any = None) -> Query:
        return replace(self, filters=(*self.filters, Filter(column, operator, value)))

    def render(self) -> tuple[sql.Composed, list[Any]]:
        """The SQL and its parameters for this query's operation."""
        return _RENDERERS[self.operation](self)

    def render_count(self) -> tuple[sql.Composed, list[Any]]:
        if self.operation != "select":
            raise QueryError("count() applies to a select, not to " + self.operation)
        where, params = _where(self.filters)
        query = sql.SQL("SELECT count(*) AS count FROM {}{}").format(
            table_identifier(self.table), where
        )
        return query, params


def table_identifier(name: str) -> sql.Identifier:
    """`users` or `schema.users`, quoted."""
    return sql.Identifier(*name.split(".", 1))


def _columns(names: Sequence[str]) -> sql.Composable:
    if not names or names == ("*",):
        return sql.SQL("*")
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _where(filters: Sequence[Filter]) -> tuple[sql.Composable, list[Any]]:
    if not filters:
        return sql.SQL(""), []
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for f in filters:
        column = sql.Identifier(f.column)
        if f.operator == "is_null":
            parts.append(sql.SQL("{} IS NULL").format(column))
        elif f.operator == "is_not_null":
            parts.append(sql.SQL("{} IS NOT NULL").format(column))
        elif f.operator == "in":
            parts.append(sql.SQL("{} = ANY(%s)").format(column))
            params.append(list(f.value))
        else:
            parts.append(sql.SQL("{} {} %s").format(column, sql.SQL(_COMPARISONS[f.operator])))
            params.append(f.value)
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params


def _returning(query: Query) -> sql.Composable:
    names = query.returning if query.returning is not None else ("*",)
    if not names:
        return sql.SQL("")
    return sql.SQL(" RETURNING ") + _columns(names)


def _refuse_unfiltered(query: Query) -> None:
    if not query.filters and not query.all_rows:
        raise QueryError(
            f"{query.operation}() on {query.table!r} has no filter; add one "
            "(e.g. .eq('id', ...)) or call .all_rows() to change every row"
        )


def _refuse(query: Query, *parts: str) -> None:
    for part in parts:
        if getattr(query, part):
            raise QueryError(f"{part.rstrip('s')}() does not apply to {query.operation}()")


def _render_select(query: Query) -> tuple[sql.Composed, list[Any]]:
    where, params = _where(query.filters)
    parts: list[sql.Composable] = [
        sql.SQL("SELECT {} FROM {}").format(_columns(query.columns), table_identifier(query.table)),
        where,
    ]
    if query.orders:
        parts.append(sql.SQL(" ORDER BY ") + sql.SQL(", ").join(_order(o) for o in query.orders))
    if query.limit is not None:
        parts.append(sql.SQL(" LIMIT %s"))
        params.append(query.limit)
    if query.offset is not None:
        parts.append(sql.SQL(" OFFSET %s"))
        params.append(query.offset)
    return sql.Composed(parts), params


def _order(order: Order) -> sql.Composable:
    text = sql.SQL("{} DESC" if order.descending else "{} ASC").format(sql.Identifier(order.column))
    if order.nulls_first is None:
        return text
    return text + sql.SQL(" NULLS FIRST" if order.nulls_first else " NULLS LAST")


def _values(query: Query) -> tuple[sql.Composable, sql.Composable, list[Any], list[str]]:
    """Column list, VALUES rows and params of an insert; keys missing in a row take DEFAULT."""
    if not query.rows:
        raise QueryError(f"insert into {query.table!r} needs at least one row")
    names: list[str] = list(dict.fromkeys(key for row in query.rows for key in row))
    if not names:
        return sql.SQL(""), sql.SQL(" DEFAULT VALUES"), [], []
    params: list[Any] = []
    rows: list[sql.Composable] = []
    for row in query.rows:
        cells: list[sql.Composable] = []
        for name in names:
            if name in row:
                cells.append(sql.SQL("%s"))
                params.append(row[name])
            else:
                cells.append(sql.SQL("DEFAULT"))
        rows.append(sql.SQL("(") + sql.SQL(", ").join(cells) + sql.SQL(")"))
    columns = sql.SQL(" (") + _columns(names) + sql.SQL(")")
    return columns, sql.SQL(" VALUES ") + sql.SQL(", ").join(rows), params, names


def _render_insert(query: Query) -> tuple[sql.Composed, list[Any]]:
    _refuse(query, "filters", "orders", "limit", "offset")
    if len(query.rows) > 1 and any(not row for row in query.rows):
        raise QueryError("an empty row cannot be inserted beside others")
    columns, values, params, _ = _values(query)
    head = sql.SQL("INSERT INTO {}").format(table_identifier(query.table))
    return sql.Composed([head, columns, values, _returning(query)]), params


def _render_upsert(query: Query) -> tuple[sql.Composed, list[Any]]:
    _refuse(query, "filters", "orders", "limit", "offset")
    columns, values, params, names = _values(query)
    conflict = query.conflict or ("id",)
    updates = [n for n in names if n not in conflict]
    target = sql.SQL(", ").join(sql.Identifier(c) for c in conflict)
    if updates:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
            for n in updates
        )
        action: sql.Composable = sql.SQL(" DO UPDATE SET ") + assignments
    else:
        action = sql.SQL(" DO NOTHING")
    head = sql.SQL("INSERT INTO {}").format(table_identifier(query.table))
    on_conflict = sql.SQL(" ON CONFLICT (") + target + sql.SQL(")")
    return sql.Composed([head, columns, values, on_conflict, action, _returning(query)]), params


def _render_update(query: Query) -> tuple[sql.Composed, list[Any]]:
    _refuse(query, "orders", "limit", "offset")
    _refuse_unfiltered(query)
    if not query.changes:
        raise QueryError(f"update() on {query.table!r} needs at least one column to set")
    params = list(query.changes.values())
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in query.changes
    )
    where, where_params = _where(query.filters)
    head = sql.SQL("UPDATE {} SET ").format(table_identifier(query.table))
    return sql.Composed([head, assignments, where, _returning(query)]), params + where_params


def _render_delete(query: Query) -> tuple[sql.Composed, list[Any]]:
    _refuse(query, "orders", "limit", "offset")
    _refuse_unfiltered(query)
    where, params = _where(query.filters)
    head = sql.SQL("DELETE FROM {}").format(table_identifier(query.table))
    return sql.Composed([head, where, _returning(query)]), params


_RENDERERS = {
    "select": _render_select,
    "insert": _render_insert,
    "upsert": _render_upsert,
    "update": _render_update,
    "delete": _render_delete,
}
