"""Query and path strings → the types the input schema asks for."""

from __future__ import annotations

from typing import Any

import pytest

from actions_server.coercion import object_plan

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "flag": {"type": "boolean"},
        "maybe": {"type": ["integer", "null"]},
        "ids": {"type": "array", "items": {"type": "integer"}},
        "words": {"type": "array", "items": {"type": "string"}},
        "word": {"type": "string"},
        "ref": {"$ref": "#/$defs/count"},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    },
    "$defs": {"count": {"type": "integer"}},
}


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("n", ["42"], 42),
        ("n", ["-3"], -3),
        ("n", ["4.0"], "4.0"),
        ("n", ["x"], "x"),
        ("x", ["2.5"], 2.5),
        ("x", ["2"], 2),
        ("x", ["1e3"], 1000.0),
        ("x", ["nan"], "nan"),
        ("x", ["1e999"], "1e999"),
        ("n", ["9" * 5000], "9" * 5000),
        ("n", ["\u0661"], "\u0661"),
        ("flag", ["true"], True),
        ("flag", ["FALSE"], False),
        ("flag", ["1"], True),
        ("flag", ["maybe"], "maybe"),
        ("maybe", ["null"], None),
        ("maybe", ["7"], 7),
        ("ids", ["1", "2"], [1, 2]),
        ("ids", ["3"], [3]),
        ("ids", ["a"], ["a"]),
        ("words", ["1"], ["1"]),
        ("word", ["007"], "007"),
        ("ref", ["5"], 5),
        ("either", ["5"], 5),
        ("either", ["five"], "five"),
        ("n", ["1", "2"], [1, 2]),
    ],
)
def test_coerce(name: str, values: list[str], expected: Any) -> None:
    keep, value = object_plan(SCHEMA).coerce(name, values)
    assert keep
    assert value == expected
    assert type(value) is type(expected)


def test_undeclared_fields_pass_as_strings_unless_forbidden() -> None:
    assert object_plan(SCHEMA).coerce("other", ["1"]) == (True, "1")
    closed = object_plan({**SCHEMA, "additionalProperties": False})
    assert closed.coerce("other", ["1"]) == (False, None)


def test_allof_properties_are_found() -> None:
    plan = object_plan(
        {"allOf": [{"properties": {"a": {"type": "integer"}}}], "unevaluatedProperties": False}
    )
    assert plan.coerce("a", ["1"]) == (True, 1)
    assert plan.coerce("b", ["1"]) == (False, None)
