"""Named SQL blocks kept in `.sql` files (as procrastinate keeps its queries).

A block starts with a `-- name: NAME` line and runs to the next one; its
trailing semicolon is dropped. Files are read once, at import.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"^-- name: ([a-z_]+)\s*$", re.M)


def parse_queries(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().removesuffix(";").strip()
    return queries


def load_queries(path: Path) -> dict[str, str]:
    return parse_queries(path.read_text(encoding="utf-8"))
