"""One run's record never costs another's: hostile values are stored as notes, a
record the database refuses is replaced by a note while its batch is stored, and
the buffer holds encoded bytes (bounded by size) rather than live objects."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson
import pytest

from actions_server.config import RunsConfig
from actions_server.db.migrate import apply_migrations
from actions_server.redaction import Redactor
from actions_server.runs.lines import RunEntry
from actions_server.runs.recorder import RunRecorder
from actions_server.scope import RunInfo
from support.polling import query

pytestmark = pytest.mark.integration


def entry(n: int, input: Any, *, user: str | None = None, action: str = "x.run") -> RunEntry:
    run = RunInfo(f"00000000-0000-7000-8000-{n:012d}", f"trace-{n}", action, "api")
    return RunEntry(run, user, None, input, b'{"ok":true}', None, time.time(), 0.001)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


async def drain(recorder: RunRecorder) -> None:
    """Write everything buffered, each flush succeeding, then close the recorder."""
    while recorder.runs or recorder.logs:
        assert await recorder.flush()
    await recorder.close()


@pytest.fixture
async def migrated(empty_database: str) -> str:
    await apply_migrations(empty_database, None)
    return empty_database


async def test_hostile_values_are_stored_as_notes_beside_every_neighbour(migrated: str) -> None:
    recorder = RunRecorder(migrated, RunsConfig(), Redactor())
    hostile = {
        100: {"deep": nested(1000), "password": "hunter2"},  # past Python's recursion limit
        200: {"text": "lone \udc80 surrogate"},
        300: {"thing": object()},  # not JSON at all
        400: {"nul": "a\x00b"},
    }
    for n in range(500):
        recorder.add_run(entry(n, hostile.get(n, {"n": n}), user="u\x00" if n == 450 else None))
    await drain(recorder)
    rows = {str(r["id"])[-3:]: r for r in query(migrated, "SELECT * FROM actions_server.runs")}
    assert len(rows) == 500
    assert recorder.dropped_runs == 0
    deep = rows["100"]["input"]
    assert deep["password"] == "[redacted]"
    assert "[too deep]" in orjson.dumps(deep).decode()
    assert rows["200"]["input"] == {"text": "lone ? surrogate"}
    assert "unrecordable" in rows["300"]["input"]
    assert rows["400"]["input"] == {"nul": "a\ufffdb"}
    assert rows["450"]["user_id"] == "u\ufffd"
    assert rows["499"]["input"] == {"n": 499}


async def test_a_record_the_database_refuses_is_replaced_by_a_note(migrated: str) -> None:
    # Stands in for any value PostgreSQL cannot take: the batch fails as a whole.
    query(
        migrated,
        "ALTER TABLE actions_server.runs ADD CONSTRAINT refuse_marked "
        "CHECK (input IS NULL OR input::text NOT LIKE '%%poison%%')",
    )
    recorder = RunRecorder(migrated, RunsConfig(), Redactor())
    for n in range(50):
        recorder.add_run(entry(n, {"word": "poison" if n == 7 else "fine", "n": n}))
    await drain(recorder)
    rows = {str(r["id"])[-2:]: r for r in query(migrated, "SELECT * FROM actions_server.runs")}
    assert len(rows) == 50
    assert recorder.dropped_runs == 0
    assert rows["07"]["input"]["unrecordable"].startswith("the database refused the record")
    assert rows["07"]["status"] == "ok"
    assert rows["07"]["trace_id"] == "trace-7"
    assert rows["08"]["input"] == {"word": "fine", "n": 8}


async def test_a_value_changed_after_the_run_ended_does_not_change_its_record(
    migrated: str,
) -> None:
    recorder = RunRecorder(migrated, RunsConfig(), Redactor())
    live = {"items": [1, 2, 3]}
    recorder.add_run(entry(1, live))
    live["items"].append(4)  # a handler that kept its input and changed it later
    live["added"] = True
    await drain(recorder)
    [row] = query(migrated, "SELECT input FROM actions_server.runs")
    assert row["input"] == {"items": [1, 2, 3]}


async def test_the_buffer_is_bounded_by_bytes(migrated: str) -> None:
    config = dataclasses.replace(RunsConfig(), buffer_bytes=1024 * 1024)
    recorder = RunRecorder(migrated, config, Redactor())
    for n in range(40):
        recorder.add_run(entry(n, {"blob": "x" * 100_000}))
    assert recorder.buffered_bytes <= 1024 * 1024
    assert len(recorder.runs) + recorder.dropped_runs == 40
    assert recorder.dropped_runs >= 29  # about ten 100 KB inputs fit in 1 MiB
    assert orjson.loads(recorder.runs[-1].input) == {"blob": "x" * 100_000}  # newest kept
    await recorder.close()


async def test_a_value_over_the_limit_is_stored_as_a_note_of_its_size(migrated: str) -> None:
    config = dataclasses.replace(RunsConfig(), max_value_bytes=10_000)
    recorder = RunRecorder(migrated, config, Redactor())
    recorder.add_run(entry(1, {"blob": "x" * 20_000}))
    recorder.add_run(entry(2, {"blob": "x" * 100}))
    await drain(recorder)
    rows = {str(r["id"])[-1]: r for r in query(migrated, "SELECT * FROM actions_server.runs")}
    assert rows["1"]["input"]["size"] == 20_011
    assert "runs.max_value_bytes" in rows["1"]["input"]["unrecordable"]
    assert rows["2"]["input"] == {"blob": "x" * 100}
