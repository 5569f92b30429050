"""A file parsed again is parsed from its text, not taken from a stale copy."""

import os
from pathlib import Path

from actions_server.sourcemap import parse_file


def test_an_unchanged_file_gives_equal_data_that_its_caller_may_change(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("module: a\nactions:\n  - name: a.x\n    tags: [one]\n")
    first = parse_file(path)
    first.data["actions"][0]["tags"].append("changed by a caller")
    second = parse_file(path)
    assert second.data == {"module": "a", "actions": [{"name": "a.x", "tags": ["one"]}]}
    assert second.line_of(("actions", 0, "tags")) == 4


def test_an_edit_of_the_same_size_and_time_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("limit: 10\n")
    assert parse_file(path).data == {"limit": 10}
    stat = path.stat()
    path.write_text("limit: 20\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as a quick second save may
    assert parse_file(path).data == {"limit": 20}
