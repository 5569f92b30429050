"""MCP tool names: which are allowed, and the one `{mcp: true}` makes from an action's.

The MCP specification asks tool names to be 1 to 128 characters of ASCII letters,
digits, `_`, `-` and `.`. A name made from an action's name replaces the dots
too: many model APIs refuse a dot in a function name (`users.list` becomes
`users_list`). Pure; the loader and the registry use it.
"""

from __future__ import annotations

import re

MAX_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9_.-]+\Z")
_NOT_IN_DERIVED = re.compile(r"[^A-Za-z0-9_-]")


def tool_name_from(action_name: str) -> str:
    """`users.list` → `users_list`: every character but letters, digits, `_` and `-` made `_`."""
    return _NOT_IN_DERIVED.sub("_", action_name)


def tool_name_problem(name: str) -> str | None:
    """What is wrong with `name` as an MCP tool name, or None."""
    if not _ALLOWED.match(name):
        return (
            f"tool name {name!r} may hold only ASCII letters, digits, '_', '-' and '.' (no spaces)"
        )
    if len(name) > MAX_LENGTH:
        return f"tool name {name[:20]!r}... is {len(name)} characters long; MCP allows {MAX_LENGTH}"
    return None
