"""`${VAR}`, `${VAR:-default}` and `$$` in config values, from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..sourcemap import JsonPath

_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `${VAR}`, `${VAR:-default}` and `$$` in one string.

    Returns the new string and the list of what is wrong with it, if anything.
    """
    errors: list[str] = []

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$$":
            return "$"
        inner = match.group(1)
        if inner is None:
            errors.append("unclosed '${' (write '$$' for a literal '$')")
            return whole
        name, has_default, default = inner.partition(":-")
        if not _NAME.match(name):
            errors.append(f"bad variable reference ${{{inner}}}: {name!r} is not a variable name")
            return whole
        value = env.get(name)
        if value is not None and (value != "" or not has_default):
            return value
        if has_default:
            return default
        errors.append(
            f"environment variable {name} is not set (give a default with ${{{name}:-value}})"
        )
        return whole

    return _REFERENCE.sub(replace, text), errors


def interpolate_tree(
    data: Any, path: JsonPath, env: Mapping[str, str], found: list[tuple[JsonPath, str]]
) -> tuple[Any, list[tuple[JsonPath, str]]]:
    """Interpolate every string in `data`; collect (path, error) pairs in `found`.

    Returns the new tree and the paths whose whole value was one reference.
    """
    whole_refs: list[tuple[JsonPath, str]] = []
    if isinstance(data, str):
        if "$" not in data:
            return data, whole_refs
        result, errors = interpolate(data, env)
        found.extend((path, e) for e in errors)
        if not errors and re.fullmatch(r"\$\{[^}]*\}", data):
            whole_refs.append((path, result))
        return result, whole_refs
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[key], refs = interpolate_tree(value, (*path, key), env, found)
            whole_refs.extend(refs)
        return out, whole_refs
    if isinstance(data, list):
        items: list[Any] = []
        for i, value in enumerate(data):
            item, refs = interpolate_tree(value, (*path, i), env, found)
            items.append(item)
            whole_refs.extend(refs)
        return items, whole_refs
    return data, whole_refs
