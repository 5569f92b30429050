"""Secrets out of what is stored and logged: values under sensitive keys become "[redacted]".

A key is sensitive when, ignoring case, `-` and `_`, it contains one of the
configured words (`runs.redact_keys`: password, token, secret, authorization,
api_key): `X-Api-Key`, `accessToken` and `client_secret` all are. The walk
goes to any depth through objects and arrays and never changes its argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import DEFAULT_REDACT_KEYS

REDACTED = "[redacted]"
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
        if isinstance(value, dict):
            return {
                key: REDACTED
                if isinstance(key, str) and self.is_sensitive(key)
                else self.redact(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact(item) for item in value]
        return value

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
