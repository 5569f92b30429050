"""The SQL the query builder emits: identifiers quoted, values as parameters."""

from __future__ import annotations

from typing import Any

import pytest

from actions_server.db.query import Query, QueryError
from actions_server.db.session import DbSession, TableQuery


def builder(table: str = "users") -> TableQuery:
    # Rendering is pure: no database, the session is never asked to connect.
    session: Any = DbSession.__new__(DbSession)
    return TableQuery(session, Query(table=table))


def render(q: TableQuery) -> tuple[str, list[Any]]:
    text, params = q.query.render()
    return text.as_string(), params


def test_select_defaults_to_star() -> None:
    assert render(builder()) == ('SELECT * FROM "users"', [])


def test_select_with_every_clause_in_any_order() -> None:
    q = (
        builder()
        .limit(10)
        .eq("org_id", 5)
        .select("id", "email, name")
        .order("created_at", desc=True)
        .offset(20)
    )
    q = (
        q.gt("age", 18)
        .in_("role", ["a", "b"])
        .ilike("name", "%an%")
        .is_null("deleted_at")
        .order("id")
    )
    assert render(q) == (
        'SELECT "id", "email", "name" FROM "users" WHERE "org_id" = %s AND "age" > %s '
        'AND "role" = ANY(%s) AND "name" ILIKE %s AND "deleted_at" IS NULL '
        'ORDER BY "created_at" DESC, "id" ASC LIMIT %s OFFSET %s',
        [5, 18, ["a", "b"], "%an%", 10, 20],
    )


@pytest.mark.parametrize(
    ("method", "value", "sql", "params"),
    [
        ("eq", None, '"c" IS NULL', []),
        ("neq", None, '"c" IS NOT NULL', []),
        ("neq", 1, '"c" <> %s', [1]),
        ("gte", 1, '"c" >= %s', [1]),
        ("lt", 1, '"c" < %s', [1]),
        ("lte", 1, '"c" <= %s', [1]),
        ("like", "a%", '"c" LIKE %s', ["a%"]),
    ],
)
def test_filters(method: str, value: Any, sql: str, params: list[Any]) -> None:
    q = getattr(builder(), method)("c", value)
    assert render(q) == (f'SELECT * FROM "users" WHERE {sql}', params)


def test_identifiers_are_quoted_against_injection() -> None:
    q = builder('users"; DROP TABLE x; --').eq('id" OR 1=1 --', "1' OR '1'='1")
    text, params = render(q)
    assert text == 'SELECT * FROM "users""; DROP TABLE x; --" WHERE "id"" OR 1=1 --" = %s'
    assert params == ["1' OR '1'='1"]


def test_schema_qualified_table() -> None:
    assert render(builder("app.users")) == ('SELECT * FROM "app"."users"', [])


def test_builders_are_immutable() -> None:
    base = builder().eq("org_id", 1)
    one = base.eq("id", 2)
    assert render(base)[1] == [1]
    assert render(one)[1] == [1, 2]


def test_insert_one_and_many_rows_with_defaults_for_missing_keys() -> None:
    assert render(builder().insert({"email": "a", "name": "b"})) == (
        'INSERT INTO "users" ("email", "name") VALUES (%s, %s) RETURNING *',
        ["a", "b"],
    )
    assert render(builder().insert([{"email": "a"}, {"name": "b"}]).returning("id")) == (
        'INSERT INTO "users" ("email", "name") VALUES (%s, DEFAULT), (DEFAULT, %s) RETURNING "id"',
        ["a", "b"],
    )
    assert render(builder().insert({})) == ('INSERT INTO "users" DEFAULT VALUES RETURNING *', [])


def test_upsert() -> None:
    assert render(builder().upsert({"email": "a", "name": "b"}, on_conflict="email")) == (
        'INSERT INTO "users" ("email", "name") VALUES (%s, %s) ON CONFLICT ("email") '
        'DO UPDATE SET "name" = EXCLUDED."name" RETURNING *',
        ["a", "b"],
    )
    assert render(builder().upsert({"id": 1})) == (
        'INSERT INTO "users" ("id") VALUES (%s) ON CONFLICT ("id") DO NOTHING RETURNING *',
        [1],
    )


def test_update_and_delete() -> None:
    assert render(builder().eq("id", 3).update({"name": "n"})) == (
        'UPDATE "users" SET "name" = %s WHERE "id" = %s RETURNING *',
        ["n", 3],
    )
    assert render(builder().delete().eq("id", 3).returning()) == (
        'DELETE FROM "users" WHERE "id" = %s',
        [3],
    )


def test_unfiltered_update_and_delete_are_refused_unless_all_rows() -> None:
    with pytest.raises(QueryError, match="has no filter"):
        builder().update({"name": "n"}).query.render()
    with pytest.raises(QueryError, match="has no filter"):
        builder().delete().query.render()
    assert render(builder().delete().all_rows()) == ('DELETE FROM "users" RETURNING *', [])


def test_count_ignores_paging() -> None:
    text, params = builder().eq("a", 1).limit(5).order("b").query.render_count()
    assert (text.as_string(), params) == (
        'SELECT count(*) AS count FROM "users" WHERE "a" = %s',
        [1],
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: builder().limit(-1), "limit"),
        (lambda: builder().offset(True), "offset"),
        (lambda: builder().in_("a", "abc"), "list of values"),
        (lambda: builder().insert({"a": 1}).limit(3).query.render(), "limit"),
        (lambda: builder().eq("a", 1).update({}).query.render(), "at least one column"),
        (lambda: builder().insert([]).query.render(), "at least one row"),
        (lambda: builder().delete().query.render_count(), "count"),
    ],
)
def test_misuse_is_a_clear_error(make: Any, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        make()
