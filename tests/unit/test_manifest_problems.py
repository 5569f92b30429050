"""Loading a folder of broken manifests reports every problem, each at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.errors import LoadError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "broken_app"

EXPECTED = [
    "actions/a_syntax.yaml:5: invalid YAML: did not find expected ',' or ']'",
    "actions/b_structure.yaml:3: unknown key 'colour'",
    "actions/b_structure.yaml:8: actions[0]: unknown key 'retries' (did you mean 'retry'?)",
    'actions/b_structure.yaml:11: actions[1].timeout_seconds: "soon" is not of type "number"',
    "actions/b_structure.yaml:12: actions[2]: missing required key 'name'",
    "actions/c_handlers.yaml:4: handler: cannot import 'broken_handlers.nothing': no module named 'broken_handlers.nothing'",
    "actions/c_handlers.yaml:6: handler: 'broken_handlers.ok' has no attribute 'absent'",
    "actions/c_handlers.yaml:8: handler: 'broken_handlers.ok:not_async' must be an async function (write `async def not_async`)",
    "actions/c_handlers.yaml:10: handler: cannot import 'broken_handlers.syntax': syntax error at broken_handlers/syntax.py:1: expected ':'",
    "actions/c_handlers.yaml:12: handler: cannot import 'broken_handlers.raises': RuntimeError: boom at import (at broken_handlers/raises.py:1)",
    "actions/d_schemas.yaml:8: actions[0].input.properties.n.type: invalid JSON Schema: 'integr' is not a JSON Schema type (string, number, integer, boolean, object, array, null)",
    "actions/d_schemas.yaml:11: cannot resolve $ref 'missing.yaml': no such file (schemas/missing.yaml)",
    "actions/d_schemas.yaml:17: cannot resolve $ref 'item.yaml#/$defs/nope': schemas/item.yaml has no '/$defs/nope'",
    "actions/d_schemas.yaml:20: input: path parameter 'id' of GET /things/{id} is not a property of the input schema, which allows no other properties",
    "actions/e_triggers.yaml:6: api trigger 'FETCH /x': unknown method 'FETCH' (one of GET, POST, PUT, PATCH, DELETE)",
    "actions/e_triggers.yaml:9: a trigger has exactly one of api, webhook, event, cron, mcp (found api and event)",
    "actions/e_triggers.yaml:12: cron '61 * * * *': Error validating expression '61': the last value (61) is higher than the maximum value (59)",
    "actions/e_triggers.yaml:15: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Paris)",
    "actions/e_triggers.yaml:18: status applies only to api and webhook triggers",
    "actions/e_triggers.yaml:24: GET /t/items/{item_id} is already served by 'triggers.first' (actions/e_triggers.yaml:19)",
    "actions/e_triggers.yaml:25: duplicate action name 'triggers.first' (first at actions/e_triggers.yaml:19)",
    "actions/f_guards.yaml:2: guards: unknown guard 'authenticatd' (did you mean 'authenticated'?) (known: authenticated, guard, has_feature, has_permission, has_role, in_org, rate_limit)",
    "actions/f_guards.yaml:7: guards: guard 'has_permission' needs a value, e.g. `- has_permission: users:create`",
    "actions/f_guards.yaml:8: guards: rate_limit: max must be a whole number ≥ 1",
    "actions/f_guards.yaml:9: guard: 'broken_handlers.ok' has no attribute 'nowhere'",
    "schemas/person.yaml:4: cannot resolve $ref 'nobody.yaml': no such file (schemas/nobody.yaml)",
]


def test_every_problem_is_listed_with_file_and_line() -> None:
    config = load_config(FIXTURE / "config.yaml", env={})
    with pytest.raises(LoadError) as caught:
        load_app(config)
    assert [str(p) for p in caught.value.problems] == EXPECTED


def test_the_valid_action_in_a_broken_module_is_not_reported() -> None:
    config = load_config(FIXTURE / "config.yaml", env={})
    with pytest.raises(LoadError) as caught:
        load_app(config)
    assert not any("structure.unknownKey" in p.message for p in caught.value.problems)
