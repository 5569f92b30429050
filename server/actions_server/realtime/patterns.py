"""Channel name patterns: `org:{org_id}:projects` matches `org:acme:projects`.

A pattern is segments separated by `:`; each segment is literal text or one
parameter `{name}`, which matches a non-empty run of characters without `:`.
Pure: parsed once at load, matched for every join and every publish. When two
patterns match a name, the one whose first differing segment is literal wins
(as routes prefer `/users/me` to `/users/{id}`); two patterns of the same shape
are a load problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

SEPARATOR = ":"
MAX_NAME_LENGTH = 200
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}\Z")
_LITERAL = re.compile(r"[A-Za-z0-9_.@~+\-]+\Z")
# What a client may put in a channel name: printable, no spaces, no braces.
_NAME = re.compile(r"[A-Za-z0-9_.@~+\-:=]{1,200}\Z")


class PatternError(ValueError):
    """A channel pattern that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str


Segment = str | Param


@dataclass(frozen=True, slots=True)
class ChannelPattern:
    text: str
    segments: tuple[Segment, ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments if isinstance(s, Param))

    @property
    def key(self) -> str:
        """The shape, parameter names erased: `org:{}:projects`."""
        return SEPARATOR.join("{}" if isinstance(s, Param) else s for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The parameters if the name split into `parts` fits this pattern, else None."""
        if len(parts) != len(self.segments):
            return None
        params = {}
        for segment, part in zip(self.segments, parts, strict=True):
            if isinstance(segment, Param):
                if not part:
                    return None
                params[segment.name] = part
            elif segment != part:
                return None
        return params

    def __str__(self) -> str:
        return self.text


def parse_pattern(text: str) -> ChannelPattern:
    """A pattern from its text; PatternError says what is wrong with it."""
    if not text:
        raise PatternError("a channel name cannot be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise PatternError(f"a channel name is at most {MAX_NAME_LENGTH} characters")
    segments: list[Segment] = []
    seen: set[str] = set()
    for part in text.split(SEPARATOR):
        if not part:
            raise PatternError(f"{text!r}: empty segment (two ':' in a row, or one at an end)")
        param = _PARAM.match(part)
        if param:
            name = param.group(1)
            if name in seen:
                raise PatternError(f"{text!r}: parameter {{{name}}} appears twice")
            seen.add(name)
            segments.append(Param(name))
        elif "{" in part or "}" in part:
            raise PatternError(
                f"{text!r}: a parameter is a whole segment between ':', such as "
                f"'org:{{org_id}}' (not {part!r})"
            )
        elif not _LITERAL.match(part):
            raise PatternError(f"{text!r}: {part!r} may hold only letters, digits and _ . @ ~ + -")
        else:
            segments.append(part)
    return ChannelPattern(text=text, segments=tuple(segments))


def valid_name(name: object) -> bool:
    """Whether `name` can be a concrete channel name (what a client joins)."""
    return isinstance(name, str) and bool(_NAME.match(name))


class HasPattern(Protocol):
    @property
    def pattern(self) -> ChannelPattern: ...


T = TypeVar("T", bound=HasPattern)


class ChannelTable(Generic[T]):
    """Declared channels by pattern: which one a concrete name belongs to."""

    __slots__ = ("_by_length", "entries")

    def __init__(self, entries: Iterable[T] = ()) -> None:
        self.entries: tuple[T, ...] = tuple(entries)
        by_length: dict[int, list[T]] = {}
        for entry in self.entries:
            by_length.setdefault(len(entry.pattern.segments), []).append(entry)
        for candidates in by_length.values():
            # Literal segments first, left to right: the most specific pattern wins.
            candidates.sort(key=lambda e: _specificity(e.pattern))
        self._by_length: Mapping[int, list[T]] = by_length

    def match(self, name: str) -> tuple[T, dict[str, str]] | None:
        """The channel `name` belongs to and its parameters, or None."""
        if not valid_name(name):
            return None
        parts = name.split(SEPARATOR)
        for entry in self._by_length.get(len(parts), ()):
            params = entry.pattern.match(parts)
            if params is not None:
                return entry, params
        return None

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)


def _specificity(pattern: ChannelPattern) -> tuple[int, ...]:
    return tuple(1 if isinstance(s, Param) else 0 for s in pattern.segments)
