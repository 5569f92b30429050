"""Manifests that load: specs, joined paths, bundled $refs, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.errors import LoadError
from actions_server.manifests.model import ApiTrigger, CronTrigger, EventTrigger
from support.apps import write_app

MANIFEST = """
module: things
prefix: /things/
guards: []
actions:
  - name: things.create
    description: Create a thing
    handler: PKG.handlers:create
    input:
      type: object
      properties: {owner: {$ref: person.yaml}}
    output: {$ref: "thing.json#/$defs/thing"}
    triggers:
      - api: post /
        status: 201
      - event: thing.requested
      - cron: "*/5 * * * *"
        timezone: Europe/Paris
    retry: {attempts: 5, backoff: exponential, base_seconds: 1, max_seconds: 300}
    timeout_seconds: 60
    transaction: false
  - name: things.get
    handler: PKG.handlers:create
    triggers: [{api: "GET /:id"}, {api: "GET /{id}/parts/{part}"}]
"""

HANDLERS = """
async def create(input, ctx):
    return {}
"""

SCHEMAS = {
    "person.yaml": "type: object\nproperties:\n  name: {type: string}\n  manager: {$ref: person.yaml}\n",
    "thing.json": '{"$defs": {"thing": {"type": "object", "properties": {"owner": {"$ref": "person.yaml"}}}}}',
}


def load(tmp_path: Path):
    config_path, package = write_app(tmp_path, {"things.yaml": MANIFEST}, HANDLERS, schemas=SCHEMAS)
    return load_app(load_config(config_path, env={})), package


def test_actions_are_indexed_with_their_triggers(tmp_path: Path) -> None:
    registry, package = load(tmp_path)
    create = registry.actions["things.create"]
    assert create.handler_ref == f"{package}.handlers:create"
    assert create.description == "Create a thing"
    assert create.transaction is False
    assert create.timeout_seconds == 60
    assert create.retry.attempts == 5
    api, event, cron = create.triggers
    assert isinstance(api, ApiTrigger)
    assert (api.method, str(api.path), api.status) == (
        "POST",
        "/things",
        201,
    )
    assert isinstance(event, EventTrigger)
    assert event.event == "thing.requested"
    assert isinstance(cron, CronTrigger)
    assert (cron.expression, cron.timezone) == (
        "*/5 * * * *",
        "Europe/Paris",
    )
    assert registry.subscriptions["thing.requested"] == (create,)
    assert [s.action.name for s in registry.schedules] == ["things.create"]
    assert {(r.method, str(r.path)) for r in registry.routes} == {
        ("POST", "/things"),
        ("GET", "/things/{id}"),
        ("GET", "/things/{id}/parts/{part}"),
    }
    assert api.location.file == "actions/things.yaml"
    assert api.location.line == 14


def test_refs_are_bundled_including_nested_and_recursive_ones(tmp_path: Path) -> None:
    registry, _ = load(tmp_path)
    create = registry.actions["things.create"]
    assert create.input is not None
    assert create.output is not None
    schema = create.input.schema
    assert schema["properties"]["owner"] == {"$ref": "#/$defs/person"}
    assert schema["$defs"]["person"]["properties"]["manager"] == {"$ref": "#/$defs/person"}
    assert (
        create.input.errors({"owner": {"name": "A", "manager": {"name": 3}}})[0].path
        == "/owner/manager/name"
    )
    output = create.output.schema
    assert output["$ref"] == "#/$defs/thing/$defs/thing"
    assert create.output.errors({"owner": {"name": 1}})[0].path == "/owner/name"


def test_default_config_values(tmp_path: Path) -> None:
    config_path, _ = write_app(tmp_path, {"things.yaml": MANIFEST}, HANDLERS, schemas=SCHEMAS)
    config = load_config(config_path, env={})
    assert config.server.port == 8080
    assert config.database.is_embedded
    assert config.schemas == tmp_path / "schemas"
    assert config.state_dir == tmp_path / ".actions-server"


def test_an_action_may_have_no_trigger_and_no_schemas(tmp_path: Path) -> None:
    manifest = "module: m\nactions:\n  - {name: m.bare, handler: PKG.handlers:create}\n"
    config_path, _ = write_app(tmp_path, {"m.yaml": manifest}, HANDLERS)
    registry = load_app(load_config(config_path, env={}))
    bare = registry.actions["m.bare"]
    assert (bare.triggers, bare.input, bare.output, bare.guards) == ((), None, None, ())


def test_empty_manifest_is_a_problem(tmp_path: Path) -> None:
    config_path, _ = write_app(tmp_path, {"empty.yaml": ""}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config_path, env={}))
    assert [str(p) for p in caught.value.problems] == [
        "actions/empty.yaml: the manifest is empty; it needs `module:` and `actions:`"
    ]


def test_missing_actions_folder_is_a_config_problem(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("app: x\nactions: [nowhere/]\n")
    with pytest.raises(LoadError) as caught:
        load_app(load_config(tmp_path / "config.yaml", env={}))
    assert [str(p) for p in caught.value.problems] == [
        "config.yaml:2: actions: 'nowhere/' does not exist"
    ]


def test_duplicate_yaml_keys_are_reported(tmp_path: Path) -> None:
    manifest = "module: m\nmodule: n\nactions: []\n"
    config_path, _ = write_app(tmp_path, {"m.yaml": manifest}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config_path, env={}))
    assert [str(p) for p in caught.value.problems] == ["actions/m.yaml:2: duplicate key 'module'"]


def test_guards_that_act_on_the_org_need_in_org_first(tmp_path: Path) -> None:
    manifest = (
        "module: m\nguards: [authenticated]\nactions:\n"
        "  - name: m.a\n    handler: PKG.handlers:create\n"
        "    guards: [{has_feature: reports}, in_org, {has_feature: ok}]\n"
        "  - name: m.b\n    handler: PKG.handlers:create\n"
        "    guards: [{rate_limit: {max: 1, window_seconds: 1, key: org}}]\n"
    )
    config_path, _ = write_app(tmp_path, {"m.yaml": manifest}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config_path, env={}))
    assert [str(p) for p in caught.value.problems] == [
        "actions/m.yaml:6: guards: has_feature: reports needs `in_org` before it (module guards run first)",
        "actions/m.yaml:9: guards: rate_limit: 1/1s per org needs `in_org` before it (module guards run first)",
    ]


def test_refs_must_stay_under_schemas(tmp_path: Path) -> None:
    manifest = "module: m\nactions:\n  - name: m.a\n    handler: PKG.handlers:create\n    input: {$ref: ../config.yaml}\n"
    config_path, _ = write_app(tmp_path, {"m.yaml": manifest}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config_path, env={}))
    assert [str(p) for p in caught.value.problems] == [
        "actions/m.yaml:5: cannot resolve $ref '../config.yaml': only files under schemas/ can be referenced"
    ]


def test_defaults_must_fit_their_schema(tmp_path: Path) -> None:
    manifest = (
        "module: m\nactions:\n  - name: m.a\n    handler: PKG.handlers:create\n    input:\n"
        "      type: object\n      required: [name]\n      properties:\n"
        "        name: {type: string}\n        limit: {type: integer, default: ten}\n"
    )
    config_path, _ = write_app(tmp_path, {"m.yaml": manifest}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config_path, env={}))
    assert [str(p) for p in caught.value.problems] == [
        'actions/m.yaml:10: input.properties.limit.default: "ten" is not of type "integer"'
    ]
