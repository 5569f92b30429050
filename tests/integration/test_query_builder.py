"""ctx.db's query builder against a real PostgreSQL: what each call does to rows."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from actions_server.db.pool import Database
from actions_server.db.query import QueryError
from actions_server.db.session import DbSession

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE items (
    id serial PRIMARY KEY,
    sku text UNIQUE NOT NULL,
    qty integer NOT NULL DEFAULT 1,
    price numeric(10, 2),
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    ref uuid DEFAULT gen_random_uuid()
);
CREATE SCHEMA shop;
CREATE TABLE shop.tags (name text PRIMARY KEY);
"""


@pytest.fixture
async def db(empty_database: str) -> AsyncIterator[DbSession]:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(SCHEMA.encode())
    database = Database(empty_database, min_size=1, max_size=2)
    await database.open()
    session = DbSession(database, transactional=False)
    try:
        yield session
    finally:
        await session.finish(commit=True)
        await database.close()


async def test_insert_returns_rows_with_database_types(db: DbSession) -> None:
    [row] = await db.table("items").insert({"sku": "a", "price": decimal.Decimal("9.99")})
    assert row["qty"] == 1
    assert row["price"] == decimal.Decimal("9.99")
    assert isinstance(row["created_at"], datetime.datetime)
    assert isinstance(row["ref"], uuid.UUID)


async def test_insert_many_with_defaults_and_select_filters(db: DbSession) -> None:
    rows = await db.table("items").insert(
        [{"sku": "a", "qty": 5}, {"sku": "b"}, {"sku": "c", "note": "x"}]
    )
    assert [r["qty"] for r in rows] == [5, 1, 1]
    items = db.table("items")
    assert [r["sku"] for r in await items.in_("sku", ["a", "c"]).order("sku")] == ["a", "c"]
    assert [r["sku"] for r in await items.is_null("note").order("sku", desc=True)] == ["b", "a"]
    assert [r["sku"] for r in await items.eq("note", None).gte("qty", 5)] == ["a"]
    assert await items.in_("sku", []).exec() == []
    assert await items.count() == 3
    assert await items.neq("sku", "a").count() == 2
    assert await items.select("sku").ilike("sku", "B").single() == {"sku": "b"}
    assert await items.eq("sku", "zzz").single() is None
    page = await items.select("sku").order("sku").limit(1).offset(1)
    assert page == [{"sku": "b"}]


async def test_update_delete_and_returning(db: DbSession) -> None:
    await db.table("items").insert([{"sku": "a"}, {"sku": "b"}])
    changed = await db.table("items").eq("sku", "a").update({"qty": 9}).returning("sku", "qty")
    assert changed == [{"sku": "a", "qty": 9}]
    assert await db.table("items").eq("sku", "nope").update({"qty": 1}) == []
    with pytest.raises(QueryError):
        await db.table("items").delete()
    assert await db.table("items").delete().all_rows().returning() == []
    assert await db.table("items").count() == 0


async def test_upsert_updates_on_conflict(db: DbSession) -> None:
    await db.table("items").insert({"sku": "a", "qty": 1})
    [row] = await db.table("items").upsert({"sku": "a", "qty": 7}, on_conflict="sku")
    assert (row["sku"], row["qty"]) == ("a", 7)
    assert await db.table("items").count() == 1


async def test_schema_qualified_table_and_raw(db: DbSession) -> None:
    await db.from_("shop.tags").insert([{"name": "x"}, {"name": "y"}])
    assert await db.raw("SELECT count(*) AS n FROM shop.tags WHERE name <> %s", "x") == [{"n": 1}]
    assert await db.raw("SELECT %(a)s::int + %(b)s::int AS sum", a=1, b=2) == [{"sum": 3}]
    assert await db.raw("CREATE TEMP TABLE t (x int)") == []


async def test_values_never_become_sql(db: DbSession) -> None:
    hostile = "x'); DROP TABLE items; --"
    await db.table("items").insert({"sku": hostile})
    assert (await db.table("items").eq("sku", hostile).single() or {})["sku"] == hostile
    assert await db.table("items").count() == 1
