"""The peers' virtualenvs: one per peer, made on first use, never the project's.

The peer benchmarks (http_peers.py, jobs_peers.py) run each peer in an
interpreter of its own under benchmarks/.peers/<name>/ (git-ignored), made with
`python -m venv` and pip from the pinned requirements below. A venv whose
requirements changed is made again; delete the folder to start over.

    python benchmarks/peers_venv.py [NAME ...]   # make them ahead of a run
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE / ".peers"

# Each peer as documented for production: uvicorn with uvloop and httptools.
_UVICORN = ["uvicorn==0.54.*", "uvloop", "httptools", "PyJWT"]
REQUIREMENTS: dict[str, list[str]] = {
    "fastapi": ["fastapi==0.165.*", "pydantic[email]", *_UVICORN],
    "litestar": ["litestar==2.25.*", "msgspec", *_UVICORN],
    "connexion": ["connexion[uvicorn]==3.3.*", *_UVICORN],
    "pgqueuer": ["pgqueuer==1.6.*", "psycopg[binary]", "psycopg-pool", "uvloop"],
}


def peer_python(name: str) -> Path:
    """The interpreter of peer `name`'s venv, made (or remade) when needed."""
    home = ROOT / name
    python = home / "bin" / "python"
    wanted = "\n".join(REQUIREMENTS[name]) + "\n"
    marker, done = home / "requirements.txt", home / ".installed"
    if python.exists() and done.exists() and done.read_text() == wanted:
        return python
    print(f"making the {name} venv in {home} ...", file=sys.stderr, flush=True)
    venv.EnvBuilder(clear=True, with_pip=True).create(home)
    marker.write_text(wanted)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(marker)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    done.write_text(wanted)  # last: an interrupted install is made again
    return python


def versions(name: str) -> str:
    """`package==version` of the peer's main packages, for the printed report."""
    main = {
        "fastapi": ["fastapi", "pydantic", "uvicorn"],
        "litestar": ["litestar", "msgspec", "uvicorn"],
        "connexion": ["connexion", "uvicorn"],
        "pgqueuer": ["pgqueuer", "psycopg"],
    }[name]
    script = (
        "import importlib.metadata as m, sys; "
        "print(' '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))"
    )
    out = subprocess.run(
        [str(peer_python(name)), "-c", script, *main], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(REQUIREMENTS):
        print(peer, versions(peer))
