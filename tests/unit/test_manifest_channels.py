"""`channels:` in manifests: loaded beside the actions, every problem at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.errors import LoadError
from support.apps import write_app

HANDLERS = """
async def say(input, ctx):
    return None
"""

GOOD = """
module: chat
guards: [authenticated]
actions:
  - name: chat.say
    handler: PKG.handlers:say
channels:
  - name: "org:{org_id}:chat"
    description: Talk within an org
    guards: [in_org, {rate_limit: {max: 5, window_seconds: 60}}]
    on_message: chat.say
    presence: true
  - name: "lobby"
"""


def test_channels_load_with_the_modules_guards_first(tmp_path: Path) -> None:
    config, _ = write_app(tmp_path, {"chat.yaml": GOOD}, HANDLERS)
    registry = load_app(load_config(config, env={}))
    chat, lobby = registry.channels.entries
    assert chat.name == "org:{org_id}:chat"
    assert [g.name for g in chat.guards] == ["authenticated", "in_org", "rate_limit"]
    assert (chat.on_message, chat.presence, chat.description) == (
        "chat.say",
        True,
        "Talk within an org",
    )
    assert (chat.location.file, chat.location.line) == ("actions/chat.yaml", 8)
    assert [g.name for g in lobby.guards] == ["authenticated"]
    assert (lobby.on_message, lobby.presence) == (None, False)
    found = registry.channels.match("org:acme:chat")
    assert found is not None
    assert found[1] == {"org_id": "acme"}


BROKEN = """
module: broken
actions:
  - name: broken.ok
    handler: PKG.handlers:say
channels:
  - name: "org::x"
  - name: "team:{team_id}"
    guards: [in_org]
  - name: "plan:{org_id}"
    guards: [{has_feature: chat}, in_org]
  - name: "room:{id}"
    on_message: broken.missing
  - name: "typo:{x}"
    guards: [authenticatd]
  - name: "extra"
    colour: blue
  - description: no name
  - name: "news:{id}"
"""

TWIN = """
module: twin
actions: []
channels:
  - name: "news:{topic}"
"""


def test_every_channel_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    config, _ = write_app(tmp_path, {"a.yaml": BROKEN, "b.yaml": TWIN}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config, env={}))
    assert [str(p) for p in caught.value.problems] == [
        "actions/a.yaml:7: channels[0].name: 'org::x': empty segment (two ':' in a row, or one at an end)",
        "actions/a.yaml:8: channels[1]: guard in_org reads the org from the channel name, which needs a {org_id} segment (team:{team_id} has none)",
        "actions/a.yaml:11: guards: has_feature: chat needs `in_org` before it (module guards run first)",
        "actions/a.yaml:12: channel 'room:{id}': on_message names no action 'broken.missing'",
        "actions/a.yaml:15: guards: unknown guard 'authenticatd' (did you mean 'authenticated'?) (known: authenticated, guard, has_feature, has_permission, has_role, in_org, rate_limit)",
        "actions/a.yaml:17: channels[5]: unknown key 'colour'",
        "actions/a.yaml:18: channels[6]: missing required key 'name'",
        "actions/b.yaml:5: channel 'news:{topic}' is already declared as 'news:{id}' (actions/a.yaml:19)",
    ]


STRICT = """
module: strict
actions:
  - name: strict.say
    handler: PKG.handlers:say
    input:
      type: object
      properties: {text: {type: string}}
      additionalProperties: false
channels:
  - name: "room:{room}"
    on_message: strict.say
"""


def test_on_message_needs_an_input_that_takes_the_parameters(tmp_path: Path) -> None:
    config, _ = write_app(tmp_path, {"strict.yaml": STRICT}, HANDLERS)
    with pytest.raises(LoadError) as caught:
        load_app(load_config(config, env={}))
    assert [str(p) for p in caught.value.problems] == [
        "actions/strict.yaml:11: channel 'room:{room}': the input of 'strict.say' must accept "
        "the channel's parameters (they are added to every message); it allows no 'room'"
    ]
