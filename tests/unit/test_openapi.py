"""OpenAPI generation is pure: registries from manifests in, documents out, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from actions_server.builtins import load_app
from actions_server.config import Config, load_config
from actions_server.openapi import build_openapi, render_docs_page
from actions_server.openapi.components import ComponentSchemas
from actions_server.registry import Registry
from support.apps import REPO, write_app

HANDLERS = """
async def noop(input, ctx):
    return None
"""


def build(tmp_path: Path, manifest: str, **kwargs: Any) -> dict[str, Any]:
    config_path, _ = write_app(tmp_path, {"app.yaml": manifest}, HANDLERS, **kwargs)
    config = load_config(config_path, env={})
    document = build_openapi(load_app(config), config)
    validate(document)
    return document


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs_in(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs_in(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = document
    for token in ref[2:].split("/"):
        target = target[token.replace("~1", "/").replace("~0", "~")]
    return target


@pytest.fixture(scope="module")
def example() -> tuple[Config, Registry, dict[str, Any]]:
    config = load_config(REPO / "config.yaml", env={})
    registry = load_app(config)
    return config, registry, build_openapi(registry, config)


def test_the_example_app_document_is_valid_openapi_3_1(example: Any) -> None:
    _, _, document = example
    validate(document)
    assert document["openapi"] == "3.1.0"
    # The example app names no version: the one of pyproject.toml beside its config.
    assert document["info"] == {"title": "saas-example", "version": "0.1.0"}


def test_every_route_is_an_operation_named_after_its_action(example: Any) -> None:
    _, registry, document = example
    operations = {
        (method.upper(), path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert operations == {(r.method, r.path.openapi): r.action.name for r in registry.routes}


def test_every_ref_resolves_and_shared_schemas_are_components(example: Any) -> None:
    _, _, document = example
    for ref in refs_in(document):
        resolve(document, ref)
    assert "$defs" not in str(document["paths"])
    assert {"Error", "user", "session", "org", "project", "file"} <= set(
        document["components"]["schemas"]
    )
    signup = document["paths"]["/auth/signup"]["post"]
    assert signup["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/session"
    }


def test_routes_that_need_a_caller_carry_bearer_auth(example: Any) -> None:
    _, _, document = example
    security = {
        op["operationId"]: op.get("security")
        for item in document["paths"].values()
        for op in item.values()
    }
    assert security["users.create"] == [{"bearerAuth": []}]
    assert security["projects.list"] == [{"bearerAuth": []}]
    assert security["auth.login"] is None
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "`Authorization: Bearer <token>`; claims `sub`, `roles`, `permissions`.",
    }


def test_query_parameters_path_parameters_and_bodies(example: Any) -> None:
    _, _, document = example
    listing = document["paths"]["/users"]["get"]
    assert listing["parameters"] == [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        },
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 0},
        },
    ]
    update = document["paths"]["/users/{id}"]["patch"]
    assert update["parameters"] == [
        {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
    ]
    body = update["requestBody"]["content"]["application/json"]["schema"]
    # `id` comes from the path; the input's minProperties: 2 counted it.
    assert set(body["properties"]) == {"email", "name"}
    assert body["minProperties"] == 1
    assert "required" not in body
    assert update["requestBody"]["required"] is True


def test_status_codes_follow_guards_input_and_method(example: Any) -> None:
    _, _, document = example
    paths = document["paths"]

    def statuses(path: str, method: str) -> str:
        return " ".join(paths[path][method]["responses"])

    assert statuses("/auth/login", "post") == "200 400 408 409 413 415 429 500 503 default"
    assert statuses("/auth/me", "get") == "200 401 500 503 default"
    assert statuses("/users/{id}", "delete") == "204 400 401 403 404 500 503 default"
    assert statuses("/reports", "post") == "202 400 401 403 404 408 409 413 415 500 503 default"
    # no output schema: a 201 promises no content, a 200 may be JSON or an empty 204
    assert paths["/orgs/{org_id}/members"]["post"]["responses"]["201"] == {
        "description": "Done.",
        "headers": {"x-trace-id": {"$ref": "#/components/headers/TraceId"}},
    }
    subscription = paths["/orgs/{org_id}/subscription"]["put"]["responses"]
    assert subscription["200"]["content"] == {"application/json": {"schema": {}}}
    assert "content" not in subscription["204"]
    too_many = document["components"]["responses"]["TooManyRequests"]
    assert too_many["headers"]["Retry-After"]["required"] is True
    assert too_many["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_org_routes_without_an_org_id_document_the_org_header(example: Any) -> None:
    _, _, document = example
    projects = document["paths"]["/projects"]["get"]
    assert projects["parameters"] == [
        {
            "name": "x-org-id",
            "in": "header",
            "required": False,
            "description": "The org to act in (or a token that carries one).",
            # Read from the database at start, so not known to the files alone.
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        }
    ]
    members = document["paths"]["/orgs/{org_id}/members"]["get"]
    assert [p["name"] for p in members["parameters"]] == ["org_id"]


def test_binary_fields_add_a_multipart_form(example: Any) -> None:
    _, _, document = example
    content = document["paths"]["/orgs/{org_id}/files"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    form = content["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    # Only binary fields are file parts, and the server ignores undeclared form fields.
    assert form["properties"]["content_base64"] == {"type": "string"}
    assert "additionalProperties" not in form
    assert content["application/json"]["schema"]["additionalProperties"] is False


def test_one_path_item_whatever_each_route_calls_its_parameter(tmp_path: Path) -> None:
    document = build(
        tmp_path,
        """
        module: things
        actions:
          - name: things.get
            handler: PKG.handlers:noop
            input: {type: object, properties: {id: {type: integer}}}
            triggers: [{api: GET /things/:id}]
          - name: things.rename
            handler: PKG.handlers:noop
            input:
              type: object
              required: [thing_id, name]
              properties: {thing_id: {type: integer}, name: {type: string}}
            triggers: [{api: PATCH /things/:thing_id}]
        """,
    )
    assert list(document["paths"]) == ["/things/{id}"]
    rename = document["paths"]["/things/{id}"]["patch"]
    assert rename["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    ]
    body = rename["requestBody"]["content"]["application/json"]["schema"]
    assert body == {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}},
    }


def test_same_names_for_different_definitions_get_distinct_components(tmp_path: Path) -> None:
    document = build(
        tmp_path,
        """
        module: things
        actions:
          - name: a.make
            handler: PKG.handlers:noop
            input:
              type: object
              properties: {x: {$ref: "#/$defs/item"}, owner: {$ref: person.yaml}}
              $defs: {item: {type: string}}
            triggers: [{api: POST /a}]
          - name: b.make
            handler: PKG.handlers:noop
            input:
              type: object
              properties: {y: {$ref: "#/$defs/item"}, owner: {$ref: person.yaml}}
              $defs: {item: {type: integer}}
            triggers: [{api: POST /b}]
        """,
        schemas={"person.yaml": "type: object\nproperties: {boss: {$ref: person.yaml}}\n"},
    )
    schemas = document["components"]["schemas"]
    assert schemas["item"] == {"type": "string"}
    assert schemas["item_2"] == {"type": "integer"}
    assert schemas["person"] == {
        "type": "object",
        "properties": {"boss": {"$ref": "#/components/schemas/person"}},
    }
    b = document["paths"]["/b"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert b["properties"]["y"] == {"$ref": "#/components/schemas/item_2"}
    assert b["properties"]["owner"] == {"$ref": "#/components/schemas/person"}


def test_a_schema_that_refers_to_its_own_root_is_lifted_whole() -> None:
    components = ComponentSchemas({})
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
    }
    inline = components.lift(tree, "tree.input")
    assert inline["properties"]["children"]["items"] == {"$ref": "#/components/schemas/tree.input"}
    assert components.schemas["tree.input"] == inline


def test_version_and_description_come_from_the_config(tmp_path: Path) -> None:
    document = build(
        tmp_path,
        "module: m\nactions: []\n",
        config="app: shop\nopenapi: {version: '2.1.0', description: The shop's API}\n",
    )
    assert document["info"] == {
        "title": "shop",
        "version": "2.1.0",
        "description": "The shop's API",
    }


def test_the_docs_page_escapes_what_manifests_say(tmp_path: Path) -> None:
    document = build(
        tmp_path,
        """
        module: m
        description: "<b>bold</b> module"
        actions:
          - name: m.do
            description: "Runs <script>alert(1)</script> & `code`"
            handler: PKG.handlers:noop
            input: {type: object, properties: {q: {type: string, pattern: "<x>"}}}
            triggers: [{api: GET /do}]
        """,
    )
    page = render_docs_page(document)
    assert "<script>" not in page
    assert "Runs &lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>code</code>" in page
    assert "&lt;b&gt;bold&lt;/b&gt; module" in page
    assert "&#34;pattern&#34;: &#34;&lt;x&gt;&#34;" in page
    assert 'id="op-m.do"' in page
    assert "://" not in page  # nothing to fetch: it works offline


def test_declared_responses_and_webhooks_are_documented(tmp_path: Path) -> None:
    document = build(
        tmp_path,
        """
        module: d
        actions:
          - name: d.create
            handler: PKG.handlers:noop
            responses:
              201: {description: Created, headers: {Location: the new thing's URL}}
              303: {description: Already there, headers: {Location: the existing thing}}
            triggers: [{api: POST /things, status: 201}]
          - name: d.export
            handler: PKG.handlers:noop
            responses:
              200: {content_type: text/csv, headers: {Content-Disposition: a file name}}
            triggers: [{api: GET /things.csv}]
          - name: d.hook
            handler: PKG.handlers:noop
            triggers:
              - webhook: POST /hooks/stripe
                verify: {scheme: stripe, secrets: [s3cret]}
        """,
    )
    create = document["paths"]["/things"]["post"]["responses"]
    assert create["201"]["headers"]["Location"]["description"] == "the new thing's URL"
    assert create["303"]["description"] == "Already there"
    export = document["paths"]["/things.csv"]["get"]["responses"]["200"]
    assert "text/csv" in export["content"]
    hook = document["paths"]["/hooks/stripe"]["post"]
    assert hook["x-webhook"] == {"scheme": "stripe", "mode": "sync"}
    assert hook["description"].startswith("Webhook: the request is verified with the `stripe`")
