"""The shell blocks of README.md and docs/cli.md run against a served example app.

Each ```sh block runs in bash (`set -euo pipefail`) in the repository's folder,
with the example app served by a real `actions-server serve` on a fresh database.
Three things are adapted, and only these: `localhost:8080` is the served app's
port, `.venv/bin/` and a bare `actions-server` are the virtualenv these tests run
in, and a `make TARGET` line is checked with `make -n` (it names a real target)
rather than run, because `make serve` is the app already served here and
`make test` is the suite running this test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.apps import REPO
from support.processes import Served, free_port
from test_docs import blocks

DOCS = [REPO / "README.md", REPO / "docs" / "cli.md"]
BIN = Path(sys.executable).parent


def shell_blocks(doc: Path) -> list[tuple[int, str]]:
    return [(b.line, b.body) for b in blocks(doc) if b.lang in ("sh", "bash", "shell")]


def adapt(script: str, port: int) -> tuple[str, list[str]]:
    """The script to run, and the make targets its `make` lines name."""
    targets: list[str] = []
    lines = []
    for line in script.splitlines():
        made = re.match(r"\s*make (\S+)", line)
        if made:
            targets.append(made.group(1))
            continue
        line = line.replace("localhost:8080", f"127.0.0.1:{port}")
        line = line.replace(".venv/bin/", f"{BIN}/")
        lines.append(line)
    return "set -euo pipefail\n" + "\n".join(lines) + "\n", targets


def test_every_doc_has_shell_blocks() -> None:
    for doc in DOCS:
        assert shell_blocks(doc), f"{doc.name} lost its shell blocks: fix DOCS here"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_shell_blocks_run(database: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "PORT": str(port),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    served = Served(["serve"], REPO, env, tmp_path / "serve.log")
    try:
        served.wait_until_healthy(f"http://127.0.0.1:{port}")
        for doc in DOCS:
            for line, body in shell_blocks(doc):
                where = f"{doc.relative_to(REPO)}:{line}"
                script, targets = adapt(body, port)
                for target in targets:
                    if shutil.which("make") is None:
                        pytest.skip("no make here")
                    dry = subprocess.run(
                        ["make", "-n", target], cwd=REPO, capture_output=True, text=True
                    )
                    assert dry.returncode == 0, f"{where}: make {target}: {dry.stderr}"
                ran = subprocess.run(
                    ["bash", "-c", script],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert ran.returncode == 0, f"{where}: exit {ran.returncode}\n{ran.stderr}"
                # curl -s prints an error body and exits 0: no answer may be one.
                assert '"error"' not in ran.stdout, f"{where}:\n{ran.stdout}"
    finally:
        served.stop()
