"""The guard syntax of manifests: which guards exist and what each one takes.

Pure: a guard entry as written (`authenticated`, `{has_permission: users:create}`,
`{rate_limit: {max: 10, window_seconds: 60}}`) is checked and normalised to
(name, argument). Importing a custom guard's function is the loader's job.
"""

from __future__ import annotations

from typing import Any

from ..sourcemap import did_you_mean

NO_ARGUMENT = frozenset({"authenticated", "in_org"})
TEXT_ARGUMENT = frozenset({"has_permission", "has_role", "has_feature", "guard"})
RATE_LIMIT_KEYS = ("user", "ip", "org")
KNOWN = sorted(NO_ARGUMENT | TEXT_ARGUMENT | {"rate_limit"})


class GuardSyntaxError(ValueError):
    """A guard entry that is not one of the known forms; the message says why."""


def parse_guard(entry: Any) -> tuple[str, Any]:
    """(name, argument) of one guard entry; raise GuardSyntaxError."""
    if isinstance(entry, str):
        name, argument = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        name, argument = next(iter(entry.items()))
    else:
        raise GuardSyntaxError("a guard is a name or a mapping with one key")
    if name not in KNOWN:
        raise GuardSyntaxError(
            f"unknown guard {name!r}{did_you_mean(name, KNOWN)} (known: {', '.join(KNOWN)})"
        )

    if name in NO_ARGUMENT:
        if argument not in (None, True):
            raise GuardSyntaxError(f"guard {name!r} takes no argument; write it as `- {name}`")
        return name, None
    if name in TEXT_ARGUMENT:
        if not isinstance(argument, str) or not argument:
            raise GuardSyntaxError(
                f"guard {name!r} needs a value, e.g. `- {name}: {_example(name)}`"
            )
        if name == "guard" and ":" not in argument:
            raise GuardSyntaxError(f"custom guard {argument!r} must be 'dotted.module:function'")
        return name, argument
    return name, _rate_limit(argument)


def _example(name: str) -> str:
    return {
        "has_permission": "users:create",
        "has_role": "admin",
        "has_feature": "reports",
        "guard": "actions.guards:is_owner",
    }[name]


def _rate_limit(argument: Any) -> dict[str, Any]:
    if not isinstance(argument, dict):
        raise GuardSyntaxError("rate_limit takes {max: N, window_seconds: S, key: user|ip|org}")
    unknown = set(argument) - {"max", "window_seconds", "key"}
    if unknown:
        raise GuardSyntaxError(f"rate_limit: unknown key {sorted(unknown)[0]!r}")
    limit = argument.get("max")
    window = argument.get("window_seconds")
    key = argument.get("key", "user")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise GuardSyntaxError("rate_limit: max must be a whole number ≥ 1")
    if not isinstance(window, int | float) or isinstance(window, bool) or window <= 0:
        raise GuardSyntaxError("rate_limit: window_seconds must be a number > 0")
    if key not in RATE_LIMIT_KEYS:
        raise GuardSyntaxError(f"rate_limit: key must be one of {', '.join(RATE_LIMIT_KEYS)}")
    return {"max": limit, "window_seconds": window, "key": key}
