"""Secrets out of what is stored and logged: values under sensitive keys become "[redacted]".

A key is sensitive when, ignoring case, `-` and `_`, it contains one of the
configured words (`runs.redact_keys`: password, token, secret, authorization,
api_key): `X-Api-Key`, `accessToken` and `client_secret` all are. The walk
goes to any depth through objects and arrays and never changes its argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .config import DEFAULT_REDACT_KEYS
from .jsonutil import storable_text

REDACTED = "[redacted]"
TOO_DEEP = "[too deep]"
MAX_DEPTH = (
    200  # deeper than any input may nest (jsonutil.MAX_DEPTH), within what orjson writes (254)
)
_MAX_CACHED_KEYS = 4096


def _normal(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


class Redactor:
    __slots__ = ("_known", "_needles")

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._needles = tuple({_normal(k) for k in keys if k})
        # Apps use few distinct keys: remember the verdict instead of rescanning.
        self._known: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        verdict = self._known.get(key)
        if verdict is None:
            normal = _normal(key)
            verdict = any(needle in normal for needle in self._needles)
            if len(self._known) >= _MAX_CACHED_KEYS:
                self._known.clear()
            self._known[key] = verdict
        return verdict

    def redact(self, value: Any) -> Any:
        """A copy of `value` with sensitive keys' values replaced, at any depth."""
        return rebuild(value, self.is_sensitive)

    def could_hold_secrets(self, text: str) -> bool:
        """False when no key in `text` (say, a value's JSON) can be sensitive.

        A cheap test in C over the whole text, so that the common value, with
        nothing to redact, never pays for the walk; a true answer may be wrong
        (the word can sit in a value) and costs the walk.
        """
        squashed = text.lower().replace("-", "").replace("_", "")
        for needle in self._needles:  # noqa: SIM110 - measured: faster than any() or a regex
            if needle in squashed:
                return True
        return False

    def path_is_sensitive(self, path: Iterable[str | int]) -> bool:
        """Whether a value at this JSON path lies under a sensitive key."""
        return any(isinstance(part, str) and self.is_sensitive(part) for part in path)


DEFAULT = Redactor()


def rebuild(
    value: Any, sensitive: Callable[[str], bool] | None = None, *, fix_text: bool = False
) -> Any:
    """A copy of the JSON-like `value` (dicts, lists, tuples as lists, scalars):
    values under keys that are `sensitive` become REDACTED, and with `fix_text`
    every string is made storable (jsonutil.storable_text).

    Iterative, never recursive: a value nested a thousand deep (hostile input, a
    cycle) must not reach Python's recursion limit, which would cost the record
    and, in a batch, its neighbours. Containers deeper than MAX_DEPTH become
    TOO_DEEP.
    """

    def leaf(item: Any) -> Any:
        if fix_text and isinstance(item, str):
            return storable_text(item)
        return item

    if not isinstance(value, dict | list | tuple):
        return leaf(value)
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            if isinstance(source, dict):
                if isinstance(key, str) and sensitive is not None and sensitive(key):
                    target[leaf(key)] = REDACTED
                    continue
                put_key = leaf(key)
            if isinstance(item, dict | list | tuple):
                if depth >= MAX_DEPTH:
                    child: Any = TOO_DEEP
                else:
                    child = {} if isinstance(item, dict) else []
                    stack.append((item, child, depth + 1))
            else:
                child = leaf(item)
            if isinstance(source, dict):
                target[put_key] = child
            else:
                target.append(child)
    return root
