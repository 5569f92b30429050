"""The vendored Swagger UI is the pinned release, byte for byte (swagger_ui/SHA256SUMS)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from actions_server.openapi.swagger import ASSETS, FOLDER, VERSION


def test_vendored_files_match_their_checksums() -> None:
    lines = (FOLDER / "SHA256SUMS").read_text().splitlines()
    assert lines[0].startswith(f"# swagger-ui-dist {VERSION} from the npm registry")
    sums = dict(reversed(line.split()) for line in lines[1:])
    assert {file for file, _ in ASSETS.values()} <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((FOLDER / name).read_bytes()).hexdigest() == digest, name
    assert sorted(p.name for p in FOLDER.iterdir()) == sorted([*sums, "SHA256SUMS"])


def test_the_license_travels_with_the_files() -> None:
    assert "Apache License" in (FOLDER / "LICENSE").read_text()
    assert Path(FOLDER / "NOTICE").read_text().strip()
