"""Without the `embedded` extra, `database.url: embedded` says what to do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actions_server.db.embedded import EmbeddedUnavailable, start_embedded


def test_missing_extra_names_the_install_command_and_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # import pgserver now fails
    monkeypatch.setitem(sys.modules, "pgserver.postgres_server", None)
    with pytest.raises(EmbeddedUnavailable) as caught:
        start_embedded(tmp_path / ".actions-server")
    message = str(caught.value)
    assert "pip install 'actions-server[embedded]'" in message
    assert "DATABASE_URL" in message
