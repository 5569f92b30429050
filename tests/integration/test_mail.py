"""ctx.mail: templates, the outbox, and a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import socket
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from support.apps import Client, serving, working, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MANIFEST = """
module: m
actions:
  - name: m.welcome
    handler: PKG.handlers:welcome
    input: {type: object, properties: {name: {type: string}, fail: {type: boolean}}}
    triggers: [{api: POST /welcome}]
  - name: m.missing
    handler: PKG.handlers:missing
    triggers: [{api: POST /missing}]
"""

HANDLERS = """
from actions_server import BadRequest

async def welcome(input, ctx):
    job_id = await ctx.mail.send(
        "ann@example.com",
        template="welcome",
        data={"name": input["name"]},
        attachments=[{"filename": "hello.txt", "content": b"hi there", "content_type": "text/plain"}],
    )
    if input.get("fail"):
        raise BadRequest("changed my mind")
    return {"job_id": job_id}

async def missing(input, ctx):
    await ctx.mail.send("ann@example.com", template="nope")
"""

TEMPLATES = {
    "welcome.html.j2": "{% block subject %}Welcome, {{ name }}!{% endblock %}<p>Hello {{ name }}</p>",
    "welcome.txt.j2": "Hello {{ name }}",
}


def app_folder(tmp_path: Path, mail: str) -> Path:
    config, _ = write_app(
        tmp_path, {"m.yaml": MANIFEST}, HANDLERS, config=f"app: m\nmail: {mail}\n"
    )
    folder = tmp_path / "templates" / "mail"
    folder.mkdir(parents=True)
    for name, text in TEMPLATES.items():
        (folder / name).write_text(text)
    return config


@pytest.fixture
async def outbox_app(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config = app_folder(tmp_path, "{from: 'Acme <noreply@acme.test>'}")
    async with serving(config, database) as client:
        yield client


async def test_a_template_renders_escaped_into_the_outbox(
    outbox_app: Client, database: str
) -> None:
    status, body, _ = await outbox_app.post("/welcome", json={"name": "<Ann & Bob>"})
    assert status == 200, body
    async with working(outbox_app):
        rows = await eventually(lambda: query(database, "SELECT * FROM actions_server.mail_outbox"))
    [row] = rows
    assert row["subject"] == "Welcome, <Ann & Bob>!"
    assert row["html_body"] == "<p>Hello &lt;Ann &amp; Bob&gt;</p>"
    assert row["text_body"] == "Hello <Ann & Bob>"
    assert row["sender"] == "Acme <noreply@acme.test>"
    assert row["recipients"] == ["ann@example.com"]
    assert row["attachments"] == [{"filename": "hello.txt", "content_type": "text/plain"}]
    assert row["job_id"] == str(body["job_id"])


async def test_mail_of_a_rolled_back_run_is_never_sent(outbox_app: Client, database: str) -> None:
    status, _, _ = await outbox_app.post("/welcome", json={"name": "x", "fail": True})
    assert status == 400
    assert query(database, "SELECT count(*) AS n FROM actions_server.jobs") == [{"n": 0}]


async def test_a_missing_template_is_the_callers_error(outbox_app: Client, database: str) -> None:
    status, body, _ = await outbox_app.post("/missing")
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert query(database, "SELECT count(*) AS n FROM actions_server.jobs") == [{"n": 0}]


class FlakySmtp:
    """Refuses the first message with a temporary error, then accepts."""

    def __init__(self) -> None:
        self.refused = 0
        self.received: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refused == 0:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.received.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[FlakySmtp, int]]:
    handler = FlakySmtp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


async def test_smtp_retries_after_a_refusal_and_delivers(
    tmp_path: Path, database: str, smtp: tuple[FlakySmtp, int]
) -> None:
    handler, port = smtp
    mail = (
        "{transport: smtp, from: 'Acme <noreply@acme.test>', "
        "retry: {attempts: 3, backoff: fixed, base_seconds: 0.1}, "
        f"smtp: {{host: 127.0.0.1, port: {port}, starttls: false}}}}"
    )
    config = app_folder(tmp_path, mail)
    async with serving(config, database) as client:
        status, _, _ = await client.post("/welcome", json={"name": "Ann"})
        assert status == 200
        async with working(client):
            await eventually(lambda: handler.received)
            done = await eventually(
                lambda: query(
                    database,
                    "SELECT status, attempts FROM actions_server.jobs WHERE status = 'done'",
                )
            )
    assert handler.refused == 1
    assert done == [{"status": "done", "attempts": 2}]
    [message] = handler.received
    assert message["Subject"] == "Welcome, Ann!"
    assert message["From"] == "Acme <noreply@acme.test>"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert parts["text/plain"].get_payload(decode=True).decode().strip() in (
        "Hello Ann",
        "hi there",
    )
    assert "<p>Hello Ann</p>" in parts["text/html"].get_payload(decode=True).decode()
    attachment = next(p for p in message.walk() if p.get_filename() == "hello.txt")
    assert attachment.get_payload(decode=True) == b"hi there"
