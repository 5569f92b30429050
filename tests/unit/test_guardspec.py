"""The guard syntax of manifests."""

from __future__ import annotations

from typing import Any

import pytest

from actions_server.manifests.guardspec import GuardSyntaxError, parse_guard


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("authenticated", ("authenticated", None)),
        ("in_org", ("in_org", None)),
        ({"has_permission": "users:create"}, ("has_permission", "users:create")),
        ({"has_role": "admin"}, ("has_role", "admin")),
        ({"has_feature": "reports"}, ("has_feature", "reports")),
        ({"guard": "app.guards:owner"}, ("guard", "app.guards:owner")),
        (
            {"rate_limit": {"max": 5, "window_seconds": 60}},
            ("rate_limit", {"max": 5, "window_seconds": 60, "key": "user"}),
        ),
        (
            {"rate_limit": {"max": 5, "window_seconds": 0.5, "key": "ip"}},
            ("rate_limit", {"max": 5, "window_seconds": 0.5, "key": "ip"}),
        ),
    ],
)
def test_valid(entry: Any, parsed: tuple[str, Any]) -> None:
    assert parse_guard(entry) == parsed


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("authenticatd", "unknown guard 'authenticatd'"),
        ({"a": 1, "b": 2}, "a name or a mapping with one key"),
        ({"in_org": "x"}, "takes no argument"),
        ({"has_role": ""}, "needs a value"),
        ({"guard": "nocolon"}, "must be 'dotted.module:function'"),
        ({"rate_limit": 5}, "rate_limit takes"),
        ({"rate_limit": {"max": 1, "window_seconds": 1, "per": "x"}}, "unknown key 'per'"),
        ({"rate_limit": {"max": 1.5, "window_seconds": 1}}, "max must be"),
        ({"rate_limit": {"max": 1, "window_seconds": -1}}, "window_seconds must be"),
        ({"rate_limit": {"max": 1, "window_seconds": 1, "key": "planet"}}, "key must be one of"),
    ],
)
def test_invalid(entry: Any, message: str) -> None:
    with pytest.raises(GuardSyntaxError, match=message):
        parse_guard(entry)
