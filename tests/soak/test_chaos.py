"""The chaos soak's short variant (75 s of chaos; longer with ACTIONS_SERVER_SOAK_SECONDS).

The soak itself, its accounting and how to run it for minutes: tests/soak/chaos.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from soak.chaos import run_soak
from support.rig import binary

SECONDS = float(os.environ.get("ACTIONS_SERVER_SOAK_SECONDS", "75"))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(SECONDS) + 300)]


@pytest.fixture
def folder() -> Iterator[Path]:
    """Outside pytest's root (mode 0700): PgBouncer reads its files as `nobody`."""
    path = Path(tempfile.mkdtemp(prefix="actions-server-soak-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_nothing_acknowledged_is_lost_under_chaos(folder: Path) -> None:
    for name in ("pgbouncer", "haproxy"):
        binary(name)
    pytest.importorskip("pgserver", reason="the soak restarts a PostgreSQL of its own (pgserver)")
    soak = await run_soak(folder, SECONDS, say=print)
    print(soak.report())
    assert soak.problems == [], soak.report()
    kinds = {move for _, move in soak.events}
    assert len(kinds) == 4, soak.events  # every kind of chaos happened
