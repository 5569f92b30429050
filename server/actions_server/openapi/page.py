"""The `/docs` page: the OpenAPI document as one readable HTML page.

Rendered with Jinja2 from the document itself (so the page and `/openapi.json`
never disagree), with autoescaping on: manifest text is data, never markup. The
template carries its own CSS and no script, and names no other host, so the
page works offline. Schemas are shown as indented JSON, their component refs
turned into links to the shared schemas at the bottom.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup, escape

_HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_SCHEMA_REF = re.compile(r"&#34;#/components/schemas/([A-Za-z0-9._-]+)((?:/[^&]*)?)&#34;")
_CODE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    name: str
    location: str
    required: bool
    schema: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: str
    description: str
    schema: Any  # None when there is no body


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    method: str
    path: str
    anchor: str
    operation_id: str
    summary: str
    description: str  # the manifest's text, then the guards
    auth: str
    parameters: list[Parameter]
    bodies: list[tuple[str, Any]]  # (content type, schema)
    responses: list[Response]


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    name: str
    description: str
    operations: list[Operation] = field(default_factory=list)


def render_docs_page(document: dict[str, Any]) -> str:
    """The HTML reference page of `document` (an OpenAPI document from build_openapi)."""
    info = document.get("info", {})
    return _template().render(
        title=info.get("title", ""),
        version=info.get("version", ""),
        description=info.get("description", ""),
        groups=_groups(document),
        schemas=document.get("components", {}).get("schemas", {}),
    )


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("actions_server.openapi", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["json"] = _json_html
    environment.filters["prose"] = _prose
    return environment.get_template("docs.html.j2")


def _json_html(value: Any) -> Markup:
    """Indented JSON, escaped, with `#/components/schemas/NAME` refs as links."""
    text = str(escape(json.dumps(value, indent=2, ensure_ascii=False)))
    return Markup(
        _SCHEMA_REF.sub(
            r'&#34;<a href="#schema-\1">#/components/schemas/\1\2</a>&#34;',
            text,
        )
    )


def _prose(text: str) -> Markup:
    """Escaped text with `code` spans, as manifests write them in descriptions."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))


def _groups(document: dict[str, Any]) -> list[Group]:
    groups = {
        tag["name"]: Group(name=tag["name"], description=tag.get("description", ""))
        for tag in document.get("tags", [])
    }
    responses = document.get("components", {}).get("responses", {})
    for path, item in document.get("paths", {}).items():
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            group = groups.setdefault(tag, Group(name=tag, description=""))
            group.operations.append(_operation(method, path, operation, responses))
    return [group for group in groups.values() if group.operations]


def _operation(
    method: str, path: str, operation: dict[str, Any], shared: dict[str, Any]
) -> Operation:
    security = operation.get("security")
    if security == [{"bearerAuth": []}]:
        auth = "bearer token required"
    elif security:
        auth = "bearer token optional"
    else:
        auth = "no token needed"
    body = operation.get("requestBody", {}).get("content", {})
    return Operation(
        method=method.upper(),
        path=path,
        anchor=f"op-{operation['operationId']}",
        operation_id=operation["operationId"],
        summary=operation.get("summary", ""),
        description=operation.get("description", ""),
        auth=auth,
        parameters=[
            Parameter(
                name=p["name"],
                location=p["in"],
                required=bool(p.get("required")),
                schema=p.get("schema", {}),
            )
            for p in operation.get("parameters", [])
        ],
        bodies=[(media, content.get("schema", {})) for media, content in body.items()],
        responses=[
            _response(status, response, shared)
            for status, response in operation.get("responses", {}).items()
        ],
    )


def _response(status: str, response: dict[str, Any], shared: dict[str, Any]) -> Response:
    ref = response.get("$ref")
    if isinstance(ref, str):
        response = shared.get(ref.rsplit("/", 1)[-1], {})
    content = response.get("content", {}).get("application/json")
    return Response(
        status=status,
        description=response.get("description", ""),
        schema=content.get("schema") if content is not None else None,
    )
