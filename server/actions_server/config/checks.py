"""What the config schema cannot say: address syntax, sections a backend needs,
files that must exist, min ≤ max."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..sourcemap import SourceDoc


def semantic_problems(data: dict[str, Any], doc: SourceDoc, root: Path) -> list[Problem]:
    """What the config schema cannot say: address syntax, min ≤ max."""
    problems = []
    for section, key in (("server", "trusted_proxies"), ("metrics", "allow")):
        for index, entry in enumerate(data.get(section, {}).get(key, [])):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                message = f"{section}.{key}: {entry!r} is not an address or CIDR range"
                problems.append(doc.problem((section, key, index), message))
    storage = data.get("storage", {})
    if storage.get("backend") == "s3":
        missing = [
            k for k in ("endpoint", "bucket", "access_key", "secret_key") if not storage.get(k)
        ]
        if missing:
            problems.append(
                doc.problem(("storage",), f"storage: the s3 backend needs {', '.join(missing)}")
            )
    mail = data.get("mail", {})
    if mail.get("transport") == "smtp" and not mail.get("smtp"):
        problems.append(
            doc.problem(
                ("mail",), "mail: the smtp transport needs an smtp section (host, port, ...)"
            )
        )
    ca_file = (mail.get("smtp") or {}).get("ca_file")
    if ca_file and not (root / ca_file).is_file():
        problems.append(
            doc.problem(("mail", "smtp", "ca_file"), f"mail.smtp.ca_file: no such file {ca_file!r}")
        )
    kv = data.get("kv", {})
    if kv.get("backend") == "redis" and not kv.get("url"):
        problems.append(
            doc.problem(("kv",), "kv: the redis backend needs a url (redis://host:6379/0)")
        )
    database = data.get("database", {})
    if database.get("transaction_pooling") and not database.get("listen_url"):
        problems.append(
            doc.problem(
                ("database", "transaction_pooling"),
                "database.transaction_pooling: LISTEN cannot go through a transaction pooler; "
                "set database.listen_url to a direct connection to PostgreSQL",
            )
        )
    pool = database.get("pool", {})
    if pool.get("min", 1) > pool.get("max", 10):
        problems.append(
            doc.problem(("database", "pool", "min"), "database.pool.min is larger than max")
        )
    realtime = data.get("realtime", {})
    if realtime.get("presence_timeout_seconds", 15) <= realtime.get(
        "presence_heartbeat_seconds", 5
    ):
        problems.append(
            doc.problem(
                ("realtime", "presence_timeout_seconds"),
                "realtime.presence_timeout_seconds must be longer than presence_heartbeat_seconds "
                "(an instance would be declared gone between two of its heartbeats)",
            )
        )
    return problems
