"""Receipts: a run's answer kept with its key, so that a retry gets the same answer
without running the action again (`Idempotency-Key` requests, webhook deliveries).

The receipt is written in the run's own transaction: it exists exactly when the
run's work committed, so a failed run leaves none and its retry runs. A retry
that arrives while the first run is still working finds its advisory lock
taken: 409, try again. A key reused for a different request (another body) is a
422. Receipts are pruned after their expiry by the hourly maintenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from .db.pool import Connection
from .errors import ActionError, Conflict


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptKey:
    """Where a run's answer is kept, and how to tell a retry from another request."""

    scope: str  # "<action>|<caller>" for Idempotency-Key, "webhook|<action>" for deliveries
    key: str
    fingerprint: str | None  # None: any request with this key is the same one (webhooks)
    ttl_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """A kept answer, to send again as it was."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None


def fingerprint(method: str, path: str, body: bytes | None) -> str:
    """What makes two requests with one key the same request: method, path, body."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body or b"")
    return digest.hexdigest()


async def look_up(conn: Connection, receipt: ReceiptKey) -> Stored | None:
    """The kept answer for `receipt`, or None when this request is the first to run.

    Takes the key's lock for the rest of the run's transaction, so a second
    request with the key waits for no one: it is told the first is still running.
    """
    cursor = await conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0)) AS mine",
        (f"{receipt.scope}\x1f{receipt.key}",),
    )
    row = await cursor.fetchone()
    if row is None or not row["mine"]:
        raise Conflict(
            "a request with this key is still being processed; retry in a moment",
            code="idempotency_key_in_use",
            headers={"Retry-After": "1"},
        )
    cursor = await conn.execute(
        "SELECT fingerprint, status, headers, body FROM actions_server.receipts "
        "WHERE scope = %s AND key = %s AND expires_at > now()",
        (receipt.scope, receipt.key),
    )
    found = await cursor.fetchone()
    if found is None:
        return None
    if receipt.fingerprint is not None and found["fingerprint"] != receipt.fingerprint:
        raise ActionError(
            422, "idempotency_key_reused", "this key was already used for a different request"
        )
    return Stored(status=found["status"], headers=found["headers"], body=found["body"])


async def keep(
    conn: Connection,
    receipt: ReceiptKey,
    status: int,
    headers: Mapping[str, Any],
    body: bytes | None,
) -> None:
    """Keep this run's answer (in its transaction), replacing an expired receipt."""
    await conn.execute(
        "INSERT INTO actions_server.receipts "
        "(scope, key, fingerprint, status, headers, body, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s)) "
        "ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
        "status = EXCLUDED.status, headers = EXCLUDED.headers, body = EXCLUDED.body, "
        "created_at = now(), expires_at = EXCLUDED.expires_at",
        (
            receipt.scope,
            receipt.key,
            receipt.fingerprint,
            status,
            Jsonb(dict(headers)),
            body,
            receipt.ttl_seconds,
        ),
    )


async def prune(conn: Connection) -> int:
    cursor = await conn.execute("DELETE FROM actions_server.receipts WHERE expires_at < now()")
    return cursor.rowcount
