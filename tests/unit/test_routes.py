"""Path templates and route matching."""

from __future__ import annotations

from typing import Any

import pytest

from actions_server.errors import MethodNotAllowed, NotFound
from actions_server.http.routes import Router
from actions_server.manifests.paths import PathError, join_paths, parse_api_trigger, parse_path
from actions_server.registry import Route


@pytest.mark.parametrize(
    ("prefix", "path", "joined"),
    [
        ("/users", "/", "/users"),
        ("/users", "/:id", "/users/:id"),
        ("", "/", "/"),
        ("/a/", "b", "/a/b"),
        ("", "/x/", "/x"),
    ],
)
def test_join_paths(prefix: str, path: str, joined: str) -> None:
    assert join_paths(prefix, path) == joined


def test_both_parameter_syntaxes_parse_the_same() -> None:
    colon, braces = parse_path("/users/:id/posts/:post"), parse_path("/users/{id}/posts/{post}")
    assert colon == braces
    assert colon.params == ("id", "post")
    assert colon.openapi == "/users/{id}/posts/{post}"
    assert parse_path("/users/{user_id}").key == parse_path("/users/:id").key == "/users/{}"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("users", "must start with '/'"),
        ("/a//b", "empty segment"),
        ("/a/:id/:id", "names parameter 'id' twice"),
        ("/a/:1x", "not a valid parameter name"),
        ("/a/b c", "characters a URL path cannot hold"),
        ("/a/{x", "characters a URL path cannot hold"),
    ],
)
def test_bad_paths(path: str, message: str) -> None:
    with pytest.raises(PathError, match=message):
        parse_path(path)


def test_api_trigger_syntax() -> None:
    assert parse_api_trigger("get /x") == ("GET", "/x")
    with pytest.raises(PathError, match="must be 'METHOD /path'"):
        parse_api_trigger("GET")
    with pytest.raises(PathError, match="unknown method 'TRACE'"):
        parse_api_trigger("TRACE /x")


def route(method: str, path: str, name: str) -> Route:
    action: Any = type("FakeAction", (), {"name": name})()
    return Route(method=method, path=parse_path(path), status=200, action=action)


ROUTER = Router(
    [
        route("GET", "/users", "list"),
        route("POST", "/users", "create"),
        route("GET", "/users/me", "me"),
        route("GET", "/users/:id", "get"),
        route("DELETE", "/users/:id", "delete"),
        route("GET", "/users/:id/posts/:post", "post"),
        route("GET", "/", "root"),
        route("GET", "/files/:name", "file"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "name", "params"),
    [
        ("GET", "/users", "list", {}),
        ("GET", "/users/", "list", {}),
        ("POST", "/users", "create", {}),
        ("GET", "/users/me", "me", {}),
        ("DELETE", "/users/me", "delete", {"id": "me"}),
        ("GET", "/users/42", "get", {"id": "42"}),
        ("GET", "/users/42/posts/7/", "post", {"id": "42", "post": "7"}),
        ("HEAD", "/users/42", "get", {"id": "42"}),
        ("GET", "/", "root", {}),
        ("GET", "/files/a%2Fb%20c", "file", {"name": "a/b c"}),
        ("GET", "//users", "list", {}),
        ("GET", "//users//42//", "get", {"id": "42"}),
    ],
)
def test_match(method: str, path: str, name: str, params: dict[str, str]) -> None:
    found, got = ROUTER.match(method, path)
    assert (found.action.name, got) == (name, params)


@pytest.mark.parametrize("path", ["/nope", "/users/1/2", "/files", "/files/"])
def test_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        ROUTER.match("GET", path)


def test_method_not_allowed_lists_allowed_methods() -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        ROUTER.match("PUT", "/users/9")
    assert caught.value.headers == {"Allow": "DELETE, GET, HEAD"}
    with pytest.raises(MethodNotAllowed) as caught:
        ROUTER.match("DELETE", "/users")
    assert caught.value.headers == {"Allow": "GET, HEAD, POST"}
