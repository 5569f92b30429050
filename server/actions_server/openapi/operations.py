"""One route → one OpenAPI operation: parameters, request body, responses, security.

What a route documents follows what the HTTP front does with it (docs/http.md):
the input is the query string, the JSON body and the path parameters merged, so
GET and DELETE take the input's properties as query parameters and the other
methods take them as a body, in both cases without the path parameters. Which
error statuses a route can answer follows from its guards, its input and its
method; each refers to one shared response under `components/responses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..manifests.model import ResponseDoc
from ..registry import Route
from .components import ComponentSchemas

BEARER = "bearerAuth"
# Guards that answer 401 to a caller without a valid token.
IDENTITY_GUARDS = frozenset(
    {"authenticated", "has_permission", "has_role", "in_org", "has_feature"}
)
# Guards that can say no to a known caller (403).
DENYING_GUARDS = frozenset({"has_permission", "has_role", "in_org", "has_feature", "guard"})
# Guards that need the org: `in_org` finds it, `has_feature` reads its plan.
ORG_GUARDS = frozenset({"in_org", "has_feature"})
QUERY_METHODS = frozenset({"GET", "DELETE"})

# status → (component name, description); the responses every operation refers to.
ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "Malformed JSON, or input that fails its schema (`validation_failed`, one detail "
        "per failing field), or input the database refused.",
    ),
    401: (
        "Unauthorized",
        "No bearer token (`unauthenticated`), or the token was refused (`invalid_token`).",
    ),
    403: (
        "Forbidden",
        "A guard said no: a missing permission or role, not a member of the org, a plan "
        "without the feature (`upgrade_required`).",
    ),
    404: ("NotFound", "Nothing has this id (`not_found`, `org_not_found`)."),
    408: ("RequestTimeout", "The body did not arrive within `server.body_timeout_seconds`."),
    409: (
        "Conflict",
        "A unique violation or a row still referenced (`conflict`, `still_referenced`), or a "
        "concurrent update (`concurrent_update`: retry).",
    ),
    413: ("PayloadTooLarge", "The body is larger than the server accepts."),
    415: ("UnsupportedMediaType", "The body is not of a content type this operation accepts."),
    429: ("TooManyRequests", "Rate limited (`rate_limited`); retry after `Retry-After` seconds."),
    500: (
        "InternalError",
        "A handler bug or an output that fails its schema; the body never shows the "
        "exception, the server log has it under the trace id.",
    ),
    503: (
        "ServiceUnavailable",
        "The database cannot be reached or does not answer (`database_unavailable`, "
        "`database_timeout`), or every connection is busy (`server_busy`, with `Retry-After`).",
    ),
    504: ("Timeout", "The action ran longer than its `timeout_seconds`; nothing was committed."),
}

OTHER_ERROR = (
    "OtherError",
    "Another error the handler raised, with its own status and code (`ActionError`).",
)

_ORG_ID_SCHEMAS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "integer": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "text": {"type": "string", "minLength": 1, "maxLength": 200},
}


def guard_names(route: Route) -> frozenset[str]:
    return frozenset(guard.name for guard in route.action.guards)


def needs_token(route: Route) -> bool:
    """Whether the route refuses callers without a valid bearer token."""
    return bool(guard_names(route) & IDENTITY_GUARDS)


def error_statuses(route: Route) -> list[int]:
    """The error statuses `route` can answer, besides 405 for a method it does not serve."""
    guards = guard_names(route)
    takes_body = route.method not in QUERY_METHODS
    statuses = {500, 503}
    if route.action.input is not None or takes_body or guards & ORG_GUARDS:
        statuses.add(400)
    if guards & IDENTITY_GUARDS:
        statuses.add(401)
    if guards & DENYING_GUARDS:
        statuses.add(403)
    if route.path.params or "in_org" in guards:
        statuses.add(404)
    if takes_body:
        statuses.update({408, 409, 413, 415})
    if "rate_limit" in guards:
        statuses.add(429)
    if route.action.timeout_seconds is not None:
        statuses.add(504)
    return sorted(statuses)


def build_operation(
    route: Route,
    path_names: tuple[str, ...],
    components: ComponentSchemas,
    org_id_format: str,
) -> dict[str, Any]:
    """The operation object of `route`; `path_names` are the parameter names the
    document's path uses (a route may spell them differently, by position)."""
    action = route.action
    owner = action.name
    input_schema = components.lift(action.input.schema, f"{owner}.input") if action.input else None
    own_params = route.path.params
    operation: dict[str, Any] = {
        "operationId": action.name,
        "tags": [action.module, *(t for t in action.tags if t != action.module)],
    }
    summary, description = _texts(action.description, route)
    if summary:
        operation["summary"] = summary
    if description:
        operation["description"] = description
    operation["x-guards"] = [str(guard) for guard in action.guards]

    # A schema that is only a $ref (`input: {$ref: order.yaml}`) is read through it.
    shape = components.resolve(input_schema)
    parameters = [
        _path_parameter(shown, _property(shape, own))
        for shown, own in zip(path_names, own_params, strict=True)
    ]
    guards = guard_names(route)
    org_from_input = "org_id" in own_params or _property(shape, "org_id") is not None
    if guards & ORG_GUARDS and not org_from_input:
        parameters.append(
            {
                "name": "x-org-id",
                "in": "header",
                "required": False,
                "description": "The org to act in (or a token that carries one).",
                "schema": dict(_ORG_ID_SCHEMAS.get(org_id_format, _ORG_ID_SCHEMAS["text"])),
            }
        )
    if route.method in QUERY_METHODS:
        parameters.extend(_query_parameters(shape, own_params))
    if parameters:
        operation["parameters"] = parameters
    if route.method not in QUERY_METHODS:
        files = action.input.binary_fields if action.input is not None else frozenset()
        body: Any = input_schema
        if own_params and isinstance(shape, dict):
            body = shape = _without(shape, own_params)
        operation["requestBody"] = _request_body(body, shape, files)

    output_schema = (
        components.lift(action.output.schema, f"{owner}.output") if action.output else None
    )
    null_ok = action.output is not None and not action.output.errors(None)
    operation["responses"] = {
        **_success_responses(
            route.status, output_schema, has_output=action.output is not None, null_ok=null_ok
        ),
        **{
            str(status): {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
            for status in error_statuses(route)
        },
        # A handler may raise any ActionError (its own status and code): the
        # statuses above are the ones the route itself can be seen to answer.
        "default": {"$ref": f"#/components/responses/{OTHER_ERROR[0]}"},
    }
    for status, doc in action.responses:
        _declare(operation["responses"], status, doc)
    if route.webhook is not None:
        verify = route.webhook.verify
        operation["x-webhook"] = {"scheme": verify.scheme, "mode": route.webhook.mode}
        operation["description"] = (
            f"Webhook: the request is verified with the `{verify.scheme}` signature scheme on "
            "its raw body before anything runs; a repeated delivery id runs once."
            + (f"\n\n{description}" if description else "")
        )
    if needs_token(route):
        operation["security"] = [{BEARER: []}]
    elif "guard" in guards:
        # A custom guard may look at the caller; a token is optional.
        operation["security"] = [{}, {BEARER: []}]
    return operation


def _texts(description: str, route: Route) -> tuple[str, str]:
    """(summary, description): the manifest's description, its first sentence as summary."""
    text = description.strip()
    first = text.split("\n", 1)[0]
    if len(first) > 120:
        sentence, dot, _ = first.partition(". ")
        first = sentence + dot.strip() if len(sentence) <= 120 else _clip(first, 120)
    guards = ", ".join(f"`{guard}`" for guard in route.action.guards)
    notes = [text] if text and text != first else []
    if guards:
        notes.append(f"Guards: {guards}.")
    return first, "\n\n".join(notes)


def _clip(text: str, width: int) -> str:
    """`text` cut at the last word that fits in `width` characters, with an ellipsis."""
    return text[: width - 1].rsplit(" ", 1)[0].rstrip(" ,;:(") + "…"


def _property(schema: Any, name: str) -> Any:
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    return properties.get(name) if isinstance(properties, Mapping) else None


def _path_parameter(name: str, schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema if schema is not None else {"type": "string"},
    }


def _query_parameters(schema: Any, path_params: tuple[str, ...]) -> list[dict[str, Any]]:
    if not isinstance(schema, Mapping):
        return []
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    return [
        {"name": name, "in": "query", "required": name in required_names, "schema": sub}
        for name, sub in properties.items()
        if name not in path_params
    ]


def _request_body(body: Any, shape: Any, files: frozenset[str]) -> dict[str, Any]:
    if body is None:
        body = {"type": "object"}  # no input schema: any JSON object goes
    content = {"application/json": {"schema": body}}
    if files:
        content["multipart/form-data"] = {"schema": _as_form(body, files)}
    return {"required": _body_required(shape), "content": content}


def _as_form(body: Any, files: frozenset[str]) -> Any:
    """The body as a multipart form, as the server reads one (http/uploads.py).

    Only `format: binary` fields are file parts; the server reads every other
    part as a plain text field, so the annotations OpenAPI 3.1 reads as "this
    part is a file" (`contentEncoding`, `contentMediaType`) are dropped from
    them. Form fields the schema does not declare are ignored, as undeclared
    query parameters are, so a form allows other properties.
    """
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return body
    form = {
        key: value
        for key, value in body.items()
        if key not in ("additionalProperties", "unevaluatedProperties") or value is not False
    }
    form["properties"] = {
        name: {k: v for k, v in sub.items() if k not in ("contentEncoding", "contentMediaType")}
        if isinstance(sub, dict) and name not in files
        else sub
        for name, sub in body["properties"].items()
    }
    return form


def _without(schema: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The input schema minus the path parameters: the part the body carries."""
    if not names:
        return schema
    body = dict(schema)
    properties = body.get("properties")
    present = set(names)
    if isinstance(properties, dict):
        body["properties"] = {k: v for k, v in properties.items() if k not in present}
    required = body.get("required")
    if isinstance(required, list):
        rest = [name for name in required if name not in present]
        if rest:
            body["required"] = rest
        else:
            del body["required"]
    # The path parameters always count among the input's properties.
    for key in ("minProperties", "maxProperties"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            body[key] = max(0, value - len(names))
    return body


def _body_required(body: Any) -> bool:
    """Whether `{}` (what an absent body means) could never be valid."""
    if not isinstance(body, Mapping):
        return False
    if body.get("required") or (body.get("minProperties") or 0) > 0:
        return True
    return any(key in body for key in ("oneOf", "anyOf", "allOf", "not", "if", "$ref"))


def _declare(responses: dict[str, Any], status: int, doc: ResponseDoc) -> None:
    """Add what the manifest declares of `status` (merged into a response already there)."""
    entry = responses.get(str(status))
    if entry is None or "$ref" in entry:
        entry = responses[str(status)] = {
            "description": doc.description or "Done.",
            "headers": {"x-trace-id": {"$ref": "#/components/headers/TraceId"}},
        }
    elif doc.description:
        entry["description"] = doc.description
    for name, meaning in doc.headers.items():
        entry.setdefault("headers", {})[name] = {
            "description": meaning,
            "schema": {"type": "string"},
        }
    if doc.content_type:
        entry["content"] = {doc.content_type: {"schema": {}}}


def _success_responses(
    status: int, schema: Any, *, has_output: bool, null_ok: bool
) -> dict[str, Any]:
    """A handler's value is sent as JSON with the route's status; `None` is an empty
    204 when that status is 200, else the status with an empty body."""
    headers = {"x-trace-id": {"$ref": "#/components/headers/TraceId"}}
    empty = {"description": "Done; no content.", "headers": headers}
    if status == 204:
        return {"204": empty}
    if not has_output and status != 200:
        # Whatever the handler returned, as JSON, or nothing when it returned None:
        # with no schema to say which, no content is promised.
        return {str(status): {"description": "Done.", "headers": headers}}
    json = {
        "description": "The action's output." if has_output else "What the handler returned.",
        "headers": headers,
        "content": {"application/json": {"schema": schema if has_output else {}}},
    }
    responses: dict[str, Any] = {str(status): json}
    if status == 200 and (null_ok or not has_output):
        responses["204"] = empty
    return responses
