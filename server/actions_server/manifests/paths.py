"""Route path templates: `/users/:id` and `/users/{id}` mean the same thing.

A template is parsed once at load into segments; `key` is its shape with the
parameter names erased, so `/users/{id}` and `/users/{user_id}` are recognised
as the same route when looking for conflicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STATIC_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%]+\Z")


class PathError(ValueError):
    """A path template that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str


Segment = str | Param


@dataclass(frozen=True, slots=True)
class PathTemplate:
    segments: tuple[Segment, ...]

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments if isinstance(s, Param))

    @property
    def is_static(self) -> bool:
        return not self.params

    @property
    def openapi(self) -> str:
        """The path in OpenAPI's `{name}` syntax; also the canonical form shown to users."""
        parts = [f"{{{s.name}}}" if isinstance(s, Param) else s for s in self.segments]
        return "/" + "/".join(parts)

    @property
    def key(self) -> str:
        """The shape of the path, parameter names erased (for conflict checks)."""
        parts = ["{}" if isinstance(s, Param) else s for s in self.segments]
        return "/" + "/".join(parts)

    def __str__(self) -> str:
        return self.openapi


def join_paths(prefix: str, path: str) -> str:
    """`/users` + `/` → `/users`; `/users` + `/:id` → `/users/:id`."""
    joined = prefix.rstrip("/") + "/" + path.lstrip("/")
    return joined.rstrip("/") or "/"


def parse_path(path: str) -> PathTemplate:
    """Parse a template; raise PathError naming what is wrong."""
    if not path.startswith("/"):
        raise PathError(f"path {path!r} must start with '/'")
    trimmed = path.strip("/")
    if not trimmed:
        return PathTemplate(())
    segments: list[Segment] = []
    seen: set[str] = set()
    for raw in trimmed.split("/"):
        if raw == "":
            raise PathError(f"path {path!r} has an empty segment ('//')")
        name = _param_name(raw)
        if name is None:
            if not _STATIC_SEGMENT.match(raw) or "{" in raw or "}" in raw:
                raise PathError(
                    f"path {path!r}: segment {raw!r} has characters a URL path cannot hold"
                )
            segments.append(raw)
            continue
        if not _PARAM_NAME.match(name):
            raise PathError(f"path {path!r}: {name!r} is not a valid parameter name")
        if name in seen:
            raise PathError(f"path {path!r} names parameter {name!r} twice")
        seen.add(name)
        segments.append(Param(name))
    return PathTemplate(tuple(segments))


def _param_name(segment: str) -> str | None:
    if segment.startswith(":"):
        return segment[1:]
    if segment.startswith("{") and segment.endswith("}"):
        return segment[1:-1]
    return None


def parse_api_trigger(value: str) -> tuple[str, str]:
    """`"POST /"` → `("POST", "/")`; raise PathError when it is not METHOD PATH."""
    parts = value.split()
    if len(parts) != 2:
        raise PathError(f"api trigger {value!r} must be 'METHOD /path', e.g. 'GET /:id'")
    method, path = parts[0].upper(), parts[1]
    if method not in HTTP_METHODS:
        allowed = ", ".join(HTTP_METHODS)
        raise PathError(f"api trigger {value!r}: unknown method {parts[0]!r} (one of {allowed})")
    return method, path
