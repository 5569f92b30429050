"""Channel name patterns: parsed at load, matched on every join and publish."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from actions_server.realtime.patterns import (
    ChannelPattern,
    ChannelTable,
    PatternError,
    parse_pattern,
    valid_name,
)


@dataclass(frozen=True)
class Entry:
    pattern: ChannelPattern


def table(*patterns: str) -> ChannelTable[Entry]:
    return ChannelTable(Entry(parse_pattern(p)) for p in patterns)


def test_a_pattern_has_literal_and_parameter_segments() -> None:
    pattern = parse_pattern("org:{org_id}:projects")
    assert pattern.params == ("org_id",)
    assert pattern.key == "org:{}:projects"
    assert str(pattern) == "org:{org_id}:projects"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "cannot be empty"),
        ("org::x", "empty segment"),
        ("org:", "empty segment"),
        ("org:{id}:{id}", "appears twice"),
        ("org:x{id}", "a parameter is a whole segment"),
        ("org:{1d}", "a parameter is a whole segment"),
        ("org name", "may hold only"),
        ("x" * 201, "at most 200"),
    ],
)
def test_bad_patterns_say_why(text: str, problem: str) -> None:
    with pytest.raises(PatternError, match=problem):
        parse_pattern(text)


def test_matching_gives_the_parameters() -> None:
    channels = table("org:{org_id}:projects", "user:{user_id}")
    found = channels.match("org:acme:projects")
    assert found is not None
    entry, params = found
    assert (entry.pattern.text, params) == ("org:{org_id}:projects", {"org_id": "acme"})
    assert channels.match("org:acme") is None
    assert channels.match("org:acme:projects:extra") is None
    assert channels.match("org::projects") is None
    assert channels.match("user:ann@example.com") is not None


def test_a_literal_segment_wins_over_a_parameter() -> None:
    channels = table("room:{id}", "room:lobby")
    found = channels.match("room:lobby")
    assert found is not None
    assert found[0].pattern.text == "room:lobby"
    found = channels.match("room:42")
    assert found is not None
    assert found[1] == {"id": "42"}


@pytest.mark.parametrize("name", ["", "a b", "a{b}", "é", "x" * 201, None, 42, "a\nb"])
def test_names_clients_cannot_join(name: object) -> None:
    assert not valid_name(name)
    assert table("{anything}").match(name) is None  # type: ignore[arg-type]
