"""Log formats and redaction: pure logic."""

from __future__ import annotations

import json
import logging

import pytest

from actions_server.logs import JsonFormatter, PrettyFormatter
from actions_server.redaction import REDACTED, Redactor


def record(**extra: object) -> logging.LogRecord:
    entry = logging.LogRecord(
        "actions_server.action", logging.INFO, __file__, 1, "hi %s", ("x",), None
    )
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


def test_json_lines_carry_the_context_keys_and_nest_the_fields() -> None:
    line = JsonFormatter().format(
        record(
            action="a.b", trace_id="t1", run_id="r1", job_id="7", fields={"level": "gold", "n": 1}
        )
    )
    entry = json.loads(line)
    assert (entry["level"], entry["message"], entry["action"]) == ("info", "hi x", "a.b")
    assert (entry["trace_id"], entry["run_id"], entry["job_id"]) == ("t1", "r1", "7")
    assert entry["fields"] == {"level": "gold", "n": 1}


def test_pretty_lines_are_one_line_with_the_action_first() -> None:
    line = PrettyFormatter(colour=False).format(record(action="a.b", fields={"n": 1}))
    assert "\n" not in line
    assert " a.b  hi x  n=1" in line


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "newPassword",
        "X-Api-Key",
        "apiKey",
        "access_token",
        "Authorization",
        "client-secret",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert Redactor().redact({key: "v"}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["name", "email", "passage", "keys"])
def test_ordinary_keys(key: str) -> None:
    assert Redactor().redact({key: "v"}) == {key: "v"}


def test_redaction_reaches_any_depth_and_leaves_the_original_alone() -> None:
    value = {"a": [{"b": {"secret": 1}}, ({"token": 2},)], "keep": 3}
    assert Redactor().redact(value) == {
        "a": [{"b": {"secret": REDACTED}}, [{"token": REDACTED}]],
        "keep": 3,
    }
    assert value["a"][0] == {"b": {"secret": 1}}


def test_the_key_list_is_configurable() -> None:
    assert Redactor(["ssn"]).redact({"SSN": 1, "password": 2}) == {"SSN": REDACTED, "password": 2}


def test_run_ids_sort_by_the_moment_they_were_made() -> None:
    import time
    import uuid

    from actions_server.ids import new_run_id
    from actions_server.runs.store import first_id_at

    now = time.time()
    made = uuid.UUID(new_run_id())
    assert first_id_at(now - 1) < made < first_id_at(now + 1)
    assert (made.version, made.variant) == (7, uuid.RFC_4122)


def test_run_ids_made_in_one_millisecond_keep_their_order() -> None:
    import uuid

    from actions_server.ids import new_run_id

    ids = [new_run_id() for _ in range(20_000)]  # thousands share a millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_trace_ids_are_w3c_shaped_and_start_with_the_time() -> None:
    import re
    import time

    from actions_server.ids import new_trace_id

    first = new_trace_id()
    while new_trace_id()[:12] == first[:12]:
        pass  # until the clock reaches the next millisecond (no sleep to guess it)
    later = [new_trace_id() for _ in range(1000)]
    assert all(re.fullmatch("[0-9a-f]{32}", t) for t in [first, *later])
    assert all(first < t for t in later)  # a later millisecond sorts after
    assert len(set(later)) == len(later)
    assert int(first[:12], 16) == pytest.approx(time.time() * 1000, abs=5000)
