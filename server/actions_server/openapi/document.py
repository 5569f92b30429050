"""The OpenAPI 3.1 document of an app, built from its registry.

Pure: the same registry and config always give the same document (routes in
path order, shared schemas in name order), so it can be built once per loaded
registry and served as cached bytes. The error body every route shares
(docs/http.md#errors) and the schemas the manifests take from `schemas/` are named
components; input and output schemas are otherwise inline, as the manifests
wrote them.
"""

from __future__ import annotations

from typing import Any

from ..config import Config, app_version
from ..registry import Registry, Route
from .components import ComponentSchemas
from .operations import BEARER, ERROR_RESPONSES, OTHER_ERROR, build_operation

OPENAPI_VERSION = "3.1.0"
ERROR_SCHEMA = "Error"
_METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}

_STRING = {"type": "string"}
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "The one body of every error response.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "trace_id"],
            "additionalProperties": False,
            "properties": {
                "code": {**_STRING, "description": "Stable and machine-readable."},
                "message": {**_STRING, "description": "For people."},
                "details": {
                    "type": "array",
                    "description": "One entry per failing field; empty when the error is "
                    "not about fields.",
                    "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "path": {**_STRING, "description": "JSON pointer into the input."},
                            "message": _STRING,
                        },
                    },
                },
                "trace_id": {**_STRING, "description": "Also in the x-trace-id header."},
            },
        }
    },
}

_HEADERS: dict[str, Any] = {
    "TraceId": {
        "description": "The request's trace id (the caller's own when it sent a plain one).",
        "required": True,
        "schema": _STRING,
    },
    "RetryAfter": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def build_openapi(registry: Registry, config: Config) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every HTTP route in `registry`.

    The document is built from files alone (`actions-server openapi` prints the
    same one the server serves): org ids are documented with the configured
    `auth.orgs.id_format`, or as plain strings when it is read from the database.
    """
    id_format = config.auth.orgs.id_format or "text"
    settings = config.sections.get("openapi", {})
    components = ComponentSchemas({ERROR_SCHEMA: ERROR_BODY})
    paths: dict[str, dict[str, Any]] = {}
    statuses: set[int] = set()
    for routes in _by_path(registry.routes):
        # Templated paths of one shape are one path item, whatever each route
        # calls its parameters; the first route's names are the ones shown.
        shown = routes[0].path
        item = paths.setdefault(shown.openapi, {})
        for route in routes:
            operation = build_operation(route, shown.params, components, id_format)
            statuses.update(
                int(s) for s in operation["responses"] if s.isdigit() and int(s) in ERROR_RESPONSES
            )
            item[route.method.lower()] = operation
    info: dict[str, Any] = {
        "title": config.app,
        "version": app_version(config),
    }
    if settings.get("description"):
        info["description"] = settings["description"]
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "tags": _tags(registry),
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "responses": {
                **{ERROR_RESPONSES[s][0]: _error_response(s) for s in sorted(statuses)},
                OTHER_ERROR[0]: _error_response(None),
            },
            "headers": _HEADERS,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer <token>`; claims `sub`, `roles`, "
                    "`permissions`.",
                }
            },
        },
    }


def _by_path(routes: tuple[Route, ...]) -> list[list[Route]]:
    ordered = sorted(routes, key=lambda r: (r.path.openapi, _METHOD_ORDER.get(r.method, 9)))
    groups: dict[str, list[Route]] = {}
    for route in ordered:
        groups.setdefault(route.path.key, []).append(route)
    return list(groups.values())


def _tags(registry: Registry) -> list[dict[str, str]]:
    """The modules that serve routes, described as their manifests describe them."""
    served = {route.action.module for route in registry.routes}
    tags = []
    for module in registry.modules:
        if module.name in served:
            tag = {"name": module.name}
            if module.description:
                tag["description"] = module.description.strip()
            tags.append(tag)
    return tags


def _error_response(status: int | None) -> dict[str, Any]:
    headers: dict[str, Any] = {"x-trace-id": {"$ref": "#/components/headers/TraceId"}}
    if status == 429:
        headers["Retry-After"] = {**_HEADERS["RetryAfter"], "required": True}
    elif status == 503:
        headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    elif status == 401:
        headers["WWW-Authenticate"] = {"schema": _STRING}
    return {
        "description": ERROR_RESPONSES[status][1] if status is not None else OTHER_ERROR[1],
        "headers": headers,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }
