"""The queries `in_org` and `has_feature` run against the app's org tables.

Table names come from `auth.orgs` (the seed's by default) and are quoted as
identifiers; the columns are the seed's: `organizations(id)`,
`org_memberships(org_id, user_id, role)`, `subscriptions(org_id, plan_key,
status)`, `plan_features(plan_key, feature_key)`.
"""

from __future__ import annotations

from psycopg import sql

from ..config import OrgTables

ACTIVE_STATUSES = ("active", "trialing")


def _table(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split(".", 1))


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
