"""The queries `in_org` and `has_feature` run against the app's org tables.

Table names come from `auth.orgs` (the seed's by default) and are quoted as
identifiers; the columns are the seed's: `organizations(id)`,
`org_memberships(org_id, user_id, role)`, `subscriptions(org_id, plan_key,
status)`, `plan_features(plan_key, feature_key)`.

The ids may be uuid, integer or text columns. Their types are read from the
catalog at start (`id_formats`), so that an id that cannot be of that type
(`abc` for a uuid column) is an unknown org without a query, and one that can
(`org-a` for a text column) is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ..config import OrgTables
from .pool import Connection
from .query import table_identifier as _table

ACTIVE_STATUSES = ("active", "trialing")
ID_FORMATS = ("uuid", "integer", "text")
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


@dataclass(frozen=True, slots=True, kw_only=True)
class IdFormats:
    """The shapes org ids and user ids take: `uuid`, `integer` or `text`."""

    org: str = "text"
    user: str = "text"


def membership_query(tables: OrgTables) -> sql.Composed:
    """One row per org found: its id as stored, and the user's role in it or NULL.

    Params (user_id, org_id).
    """
    return sql.SQL(
        "SELECT o.id::text AS org_id, m.role FROM {orgs} o "
        "LEFT JOIN {members} m ON m.org_id = o.id AND m.user_id = %s "
        "WHERE o.id = %s"
    ).format(orgs=_table(tables.organizations), members=_table(tables.memberships))


def feature_query(tables: OrgTables) -> sql.Composed:
    """A row when the org's active or trialing plan has the feature; params (org_id, feature)."""
    return sql.SQL(
        "SELECT 1 AS yes FROM {subs} s JOIN {features} f ON f.plan_key = s.plan_key "
        "WHERE s.org_id = %s AND s.status = ANY({statuses}) AND f.feature_key = %s LIMIT 1"
    ).format(
        subs=_table(tables.subscriptions),
        features=_table(tables.plan_features),
        statuses=sql.Literal(list(ACTIVE_STATUSES)),
    )


def format_of(type_name: str | None) -> str:
    """The id shape of a column of PostgreSQL type `type_name` (`format_type` text)."""
    if type_name == "uuid":
        return "uuid"
    if type_name in _INTEGER_TYPES:
        return "integer"
    return "text"  # text, varchar(n), citext, ...; or no such column: nothing to pre-check


async def id_formats(conn: Connection, tables: OrgTables) -> IdFormats:
    """The configured id format, or the one the id columns' types give."""
    if tables.id_format is not None:
        return IdFormats(org=tables.id_format, user=tables.id_format)
    org = await _column_type(conn, tables.organizations, "id")
    user = await _column_type(conn, tables.memberships, "user_id")
    return IdFormats(org=format_of(org), user=format_of(user))


async def _column_type(conn: Connection, table: str, column: str) -> str | None:
    qualified = _table(table).as_string(conn)
    cursor = await conn.execute(
        "SELECT format_type(a.atttypid, NULL) AS type FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        (qualified, column),
    )
    row = await cursor.fetchone()
    return str(row["type"]) if row else None
