"""Route matching, pure: (method, raw path) → (route, path parameters).

Static paths are one dict lookup. Paths with parameters walk a tree of
segments where a literal segment is tried before a parameter (`/users/me`
before `/users/{id}`), backtracking when the literal branch leads nowhere. A
path that exists under other methods is a 405 naming them (HEAD falls back to
GET); a path that exists under none is a 404. A trailing slash finds the same
route, and repeated slashes count as one. Parameter values are percent-decoded
after splitting, so `%2F` stays inside its segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

from ..errors import MethodNotAllowed, NotFound
from ..manifests.paths import Param
from ..registry import Route

Methods = dict[str, Route]


class _Node:
    __slots__ = ("children", "methods", "param")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.methods: Methods = {}


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._static: dict[str, Methods] = {}
        self._tree = _Node()
        for route in routes:
            if route.path.is_static:
                self._static.setdefault(route.path.openapi, {})[route.method] = route
                continue
            node = self._tree
            for segment in route.path.segments:
                if isinstance(segment, Param):
                    if node.param is None:
                        node.param = _Node()
                    node = node.param
                else:
                    node = node.children.setdefault(segment, _Node())
            node.methods[route.method] = route

    def methods(self, raw_path: str) -> set[str]:
        """Every method served on `raw_path` (HEAD wherever GET is); empty: no such path."""
        path = normalize_path(raw_path)
        found = set(self._static.get(path, ()))
        segments = path.strip("/").split("/") if path != "/" else []
        for methods in _walk(self._tree, segments, 0):
            found.update(methods)
        if "GET" in found:
            found.add("HEAD")
        return found

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """The route for `method` on `raw_path` and its decoded parameters.

        Raises NotFound (no such path) or MethodNotAllowed (path exists, method does not).
        """
        path = normalize_path(raw_path)
        allowed: set[str] = set()
        static = self._static.get(path)
        if static is not None:
            route = _pick(static, method)
            if route is not None:
                return route, {}
            allowed.update(static)
        segments = path.strip("/").split("/") if path != "/" else []
        for methods in _walk(self._tree, segments, 0):
            route = _pick(methods, method)
            if route is not None:
                return route, _params(route, segments)
            allowed.update(methods)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            raise MethodNotAllowed(allowed, f"{method} is not allowed on {path}")
        raise NotFound(f"no route for {method} {path}", code="route_not_found")


_SLASHES = re.compile(r"//+")


def normalize_path(raw_path: str) -> str:
    """Repeated slashes collapse and a trailing slash goes: `//users/` → `/users`."""
    if "//" in raw_path:
        raw_path = _SLASHES.sub("/", raw_path)
    return raw_path.rstrip("/") or "/"


def _pick(methods: Methods, method: str) -> Route | None:
    route = methods.get(method)
    if route is None and method == "HEAD":
        route = methods.get("GET")
    return route


def _walk(node: _Node, segments: list[str], index: int) -> Iterator[Methods]:
    """Every leaf that matches, literal branches first."""
    if index == len(segments):
        if node.methods:
            yield node.methods
        return
    segment = segments[index]
    child = node.children.get(segment)
    if child is not None:
        yield from _walk(child, segments, index + 1)
    if node.param is not None and segment:
        yield from _walk(node.param, segments, index + 1)


def _params(route: Route, segments: list[str]) -> dict[str, str]:
    return {
        part.name: unquote(segments[i])
        for i, part in enumerate(route.path.segments)
        if isinstance(part, Param)
    }
