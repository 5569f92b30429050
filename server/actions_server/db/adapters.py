"""How pooled connections write JSON: psycopg's encoding for handlers' values, orjson
for the framework's own."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb, JsonbBinaryDumper, JsonbDumper, JsonbLoader

from ..jsonutil import dumps_for_db, loads


class CheckedJsonb(Jsonb):
    """A jsonb value the framework built or checked itself (queue payloads, principals):
    written by orjson, several times faster than the standard library's json, and in
    binary, so an array of them (a bulk push or emit) needs no quoting per element.
    Values a handler passes through `ctx.db` keep psycopg's default encoding, whose
    limits (integers beyond 64 bits, NaN refused by PostgreSQL) they may rely on."""


class FrameworkJsonbLoader(JsonbLoader):
    """Reads jsonb the framework wrote with CheckedJsonb (a claimed job's payload and
    principal) with orjson. Only for such values: orjson reads an integer beyond 64
    bits as a float, but orjson could not have written one."""

    _loads = staticmethod(loads)


class _CheckedJsonbDumper(JsonbDumper):
    _dumps = staticmethod(dumps_for_db)


class _CheckedJsonbBinaryDumper(JsonbBinaryDumper):
    _dumps = staticmethod(dumps_for_db)


async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every pooled connection stores a dict as JSON (a list stays an array, for ANY())."""
    conn.adapters.register_dumper(dict, JsonbDumper)
    conn.adapters.register_dumper(CheckedJsonb, _CheckedJsonbDumper)
    conn.adapters.register_dumper(CheckedJsonb, _CheckedJsonbBinaryDumper)  # the default
