"""`schemathesis run` against the example app's own `/openapi.json`, over real HTTP.

The example app is served on a real socket (from a thread with its own event
loop) against a database cloned from the migrated template. Before the run a
user signs up, is given the `admin` role and creates an org on the pro plan, so
that generated requests carry a token and an org that exist and reach the
handlers instead of stopping at the guards. Schemathesis then runs its coverage,
fuzzing and stateful phases with a small number of examples per operation from a
fixed seed; any 5xx, any status an operation does not document, and any body,
content type or header that breaks what is documented fails the test, with
schemathesis's report (and a curl command per failure) as the message.

The CLI is the interface used, as in CI: schemathesis's pytest integration
(`schemathesis.pytest.from_fixture`) cannot load a schema from a fixture under
pytest 9.2, whose nodes no longer have the `_nodeid` it rewrites.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from actions_server.config import Config
from support.apps import Client, serving
from support.processes import http

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 10
SEED = 20240601


@dataclasses.dataclass(frozen=True)
class ServedExample:
    base: str
    token: str
    org_id: str


@contextmanager
def served_in_thread(config: Config, dsn: str) -> Iterator[Client]:
    """Serve the app from a thread, so that a blocking caller can wait on its answers."""
    started: queue.Queue[Client | BaseException] = queue.Queue()
    stop = threading.Event()

    async def run() -> None:
        try:
            async with serving(config, dsn) as client:
                started.put(client)
                await asyncio.to_thread(stop.wait)
        except BaseException as exc:
            started.put(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    got = started.get(timeout=60)
    if isinstance(got, BaseException):
        raise got
    try:
        yield got
    finally:
        stop.set()
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def example_database(server_dsn: str, template_db: str) -> Iterator[str]:
    name = f"as_st_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="module")
def served_example(
    example_config: Config, example_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedExample]:
    storage = dataclasses.replace(
        example_config.storage, path=str(tmp_path_factory.mktemp("storage"))
    )
    config = dataclasses.replace(example_config, storage=storage)
    with served_in_thread(config, example_database) as client:
        base = client.base
        status, body = http(
            "POST",
            f"{base}/auth/signup",
            {"email": "fuzz@example.com", "password": "correct horse", "name": "Fuzz"},
        )
        assert status == 201, body
        token = client.token(body["user"]["id"], roles=("admin",), ttl_seconds=3600)
        status, body = http("POST", f"{base}/orgs", {"name": "Fuzz Inc"}, token=token)
        assert status == 201, body
        org_id = body["org"]["id"]
        status, body = http(
            "PUT", f"{base}/orgs/{org_id}/subscription", {"plan_key": "pro"}, token=token
        )
        assert status in (200, 204), body
        yield ServedExample(base=base, token=token, org_id=org_id)


def schemathesis_config(served: ServedExample) -> str:
    """schemathesis.toml for a run as the admin, in the org (TOML strings are JSON strings)."""

    def text(value: str) -> str:
        return json.dumps(value)

    return f"""
seed = {SEED}

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"

[auth]
auto-signup = false

[auth.openapi.bearerAuth]
bearer = {text(served.token)}

# Generated org ids never name an org; the real one lets requests pass in_org
# and reach the handlers. Every other parameter stays generated.
[parameters]
"path.org_id" = {text(served.org_id)}
"header.x-org-id" = {text(served.org_id)}

# Left out on purpose: "a request that fits the schema is accepted". Handlers
# and the database refuse schema-valid input for reasons no schema states
# (`content_base64` that is not base64, an `offset` past bigint, a row the input
# refers to that the stateful phase deleted), and answer 400 as documented.
# Everything about the responses (status, content type, headers, body) and
# 5xx stays checked.
[checks.positive_data_acceptance]
enabled = false
"""


@pytest.mark.timeout(600)
def test_example_app_answers_as_its_openapi_document_says(
    served_example: ServedExample, tmp_path: Path
) -> None:
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(served_example))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{served_example.base}/openapi.json",
    ]
    # cwd: schemathesis keeps its cache and reports next to where it runs.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "25 selected / 25 total" in result.stdout  # every route was tried
