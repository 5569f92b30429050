"""The README's and docs' code blocks run (as watchfiles tests its docs).

In each Markdown file, fenced blocks tagged `file=PATH` are written into an app
folder; the app is served by a real `actions-server serve` process on a fresh
database, and each `http request` block is sent to it and its answer compared
with the `json response` block that follows. Python blocks without a file are
compiled, YAML blocks parsed (and checked against the manifest schema when they
are manifests).
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from actions_server.manifests.loader import manifest_schema
from support.apps import REPO
from support.processes import Served, free_port, http

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.S | re.M)
DEFAULT_CONFIG = "app: docs\ndatabase: {url: '${DATABASE_URL}'}\n"


@dataclass
class Block:
    lang: str
    info: str
    body: str
    line: int

    @property
    def file(self) -> str | None:
        match = re.search(r"file=(\S+)", self.info)
        return match.group(1) if match else None


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    return [
        Block(m["lang"], m["info"].strip(), m["body"], text.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(text)
    ]


def ids(docs: list[Path]) -> list[str]:
    return [str(d.relative_to(REPO)) for d in docs]


@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_snippets_parse(doc: Path) -> None:
    validator = jsonschema_rs.validator_for(manifest_schema())
    for block in blocks(doc):
        where = f"{doc.name}:{block.line}"
        if block.lang == "python" and block.file is None:
            # Handler fragments may await, as handler bodies do.
            compile(block.body, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        elif block.lang == "yaml":
            data = yaml.safe_load(block.body)
            if isinstance(data, dict) and "module" in data:
                errors = [e.message for e in validator.iter_errors(data)]
                assert errors == [], where
        elif block.lang == "json" and "response" not in block.info:
            json.loads(block.body)


APP_DOCS = [d for d in DOCS if any(b.file for b in blocks(d))]


def parse_request(text: str) -> tuple[str, str, object]:
    """`METHOD /path`, then an optional JSON body on the following lines."""
    first, _, rest = text.partition("\n")
    method, path = first.split()
    return method, path, json.loads(rest) if rest.strip() else None


def without_trace_ids(value: object) -> object:
    """Trace ids are random: documented responses show them as "..."."""
    if isinstance(value, dict):
        return {k: "..." if k == "trace_id" else without_trace_ids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_trace_ids(v) for v in value]
    return value


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("doc", APP_DOCS, ids=ids(APP_DOCS))
def test_documented_app_answers_as_documented(
    doc: Path, tmp_path: Path, empty_database: str
) -> None:
    found = blocks(doc)
    for block in found:
        if block.file:
            target = tmp_path / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body)
    if not (tmp_path / "config.yaml").exists():
        (tmp_path / "config.yaml").write_text(DEFAULT_CONFIG)
    exchanges = [
        (request, response)
        for request, response in itertools.pairwise(found)
        if request.lang == "http" and "request" in request.info and "response" in response.info
    ]
    assert exchanges, f"{doc.name} has an app but no request/response to check it with"
    port = free_port()
    env = {**os.environ, "DATABASE_URL": empty_database}
    served = Served(
        ["serve", "config.yaml", "--port", str(port)], tmp_path, env, tmp_path / "serve.log"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        served.wait_until_healthy(base)
        for request, response in exchanges:
            method, path, body = parse_request(request.body)
            status, answer = http(method, base + path, body)
            expected = json.loads(response.body)
            assert without_trace_ids(answer) == expected, (
                f"{doc.name}:{request.line}: {status} {answer}"
            )
    finally:
        served.stop()
