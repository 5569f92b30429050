"""SMTP as production uses it: STARTTLS and a login, against aiosmtpd on loopback.

The server has a self-signed certificate made for the test and checks the login
with an authenticator; a mail queued by a served app's run is delivered by the
app's worker, and a wrong password fails the job, which retries, ends dead and
records why, without the password anywhere.
"""

from __future__ import annotations

import email
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from support.apps import serving, working, write_app
from support.certs import self_signed
from support.polling import eventually, query
from support.processes import free_port

pytestmark = pytest.mark.integration

USER = "mailer@acme.test"
PASSWORD = "s3cret-Pa55-for-smtp"  # must never show in a stored error, run or log

MANIFEST = """
module: n
actions:
  - name: n.reportReady
    handler: PKG.handlers:report_ready
    triggers: [{api: POST /report-ready}]
"""

HANDLERS = """
async def report_ready(input, ctx):
    job_id = await ctx.mail.send(
        ["ann@example.com", "bob@example.com"],
        subject="Your report is ready",
        text="Hello Ann, the Q1 report is ready.",
        cc="carol@example.com",
        bcc="audit@acme.test",
    )
    return {"job_id": job_id}
"""


@dataclass
class Delivered:
    sender: str
    recipients: list[str]
    message: Message
    encrypted: bool
    login: str | None


@dataclass
class Inbox:
    """aiosmtpd's handler: keeps every accepted message with how it came."""

    received: list[Delivered] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated else None
        self.received.append(
            Delivered(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                message=email.message_from_bytes(envelope.content),
                encrypted=session.ssl is not None,
                login=login,
            )
        )
        return "250 OK"


@dataclass
class Accounts:
    """aiosmtpd's authenticator: one account, every attempt noted."""

    attempts: list[tuple[str, bool]] = field(default_factory=list)

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        good = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        self.attempts.append((login, good))
        return AuthResult(success=good, handled=False, auth_data=auth_data)


@dataclass
class SmtpServer:
    inbox: Inbox
    accounts: Accounts
    port: int
    certificate: Path


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    certificate, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate, key)
    inbox, accounts, port = Inbox(), Accounts(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,  # nothing but EHLO and STARTTLS before TLS
        authenticator=accounts,
        auth_require_tls=True,
        auth_required=True,  # no mail without a login
    )
    controller.start()
    try:
        yield SmtpServer(inbox, accounts, port, certificate)
    finally:
        controller.stop()


def mail_app(folder: Path, server: SmtpServer, *, password: str, trust: bool = True) -> Path:
    ca_file = f", ca_file: {server.certificate}" if trust else ""
    config = (
        "app: n\n"
        "mail:\n"
        "  transport: smtp\n"
        "  from: 'Acme Reports <reports@acme.test>'\n"
        "  retry: {attempts: 2, backoff: fixed, base_seconds: 0.05}\n"
        f"  smtp: {{host: 127.0.0.1, port: {server.port}, starttls: true,\n"
        f"         username: '{USER}', password: '{password}'{ca_file}}}\n"
    )
    path, _ = write_app(folder, {"n.yaml": MANIFEST}, HANDLERS, config=config)
    return path


def mail_jobs(dsn: str) -> list[dict[str, Any]]:
    return query(
        dsn,
        "SELECT id, status, attempts, last_error FROM actions_server.jobs"
        " WHERE action = 'actions_server.sendMail'",
    )


def everything_recorded(dsn: str) -> str:
    """Every stored job, run and run log line, as one text to search."""
    rows = [
        *query(dsn, "SELECT * FROM actions_server.jobs"),
        *query(dsn, "SELECT * FROM actions_server.runs"),
        *query(dsn, "SELECT * FROM actions_server.run_logs"),
    ]
    return json.dumps(rows, default=str)


async def test_a_queued_mail_goes_out_over_starttls_with_a_login(
    tmp_path: Path, empty_database: str, smtp_server: SmtpServer
) -> None:
    config = mail_app(tmp_path, smtp_server, password=PASSWORD)
    async with serving(config, empty_database) as client:
        status, body, _ = await client.post("/report-ready")
        assert status == 200, body
        async with working(client):
            done = await eventually(
                lambda: [j for j in mail_jobs(empty_database) if j["status"] == "done"]
            )
    assert [(j["id"], j["attempts"]) for j in done] == [(body["job_id"], 1)]
    [delivered] = smtp_server.inbox.received
    assert delivered.encrypted  # STARTTLS, with the certificate checked against ca_file
    assert delivered.login == USER
    assert smtp_server.accounts.attempts == [(USER, True)]
    assert delivered.sender == "reports@acme.test"
    assert delivered.recipients == [
        "ann@example.com",
        "bob@example.com",
        "carol@example.com",
        "audit@acme.test",
    ]
    message = delivered.message
    assert message["To"] == "ann@example.com, bob@example.com"
    assert message["Cc"] == "carol@example.com"
    assert message["Bcc"] is None  # a blind copy is in the envelope only
    assert message["Subject"] == "Your report is ready"
    assert message.get_payload(decode=True).decode().strip() == "Hello Ann, the Q1 report is ready."


async def test_a_wrong_password_fails_the_job_which_retries_and_records_no_secret(
    tmp_path: Path, empty_database: str, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-" + PASSWORD
    config = mail_app(tmp_path, smtp_server, password=wrong)
    async with serving(config, empty_database) as client:
        status, _, _ = await client.post("/report-ready")
        assert status == 200
        async with working(client):
            dead = await eventually(
                lambda: [j for j in mail_jobs(empty_database) if j["status"] == "dead"]
            )
    [job] = dead
    assert job["attempts"] == 2  # retried, then given up on
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN) on every attempt.
    assert len(smtp_server.accounts.attempts) >= 2
    assert set(smtp_server.accounts.attempts) == {(USER, False)}
    assert smtp_server.inbox.received == []
    error = job["last_error"]
    assert error["code"] == "delivery_failed"
    assert error["message"] == (
        f"the SMTP server at 127.0.0.1:{smtp_server.port} refused: "
        "(535, b'5.7.8 Authentication credentials invalid')"
    )
    recorded = everything_recorded(empty_database)
    for secret in (wrong, PASSWORD):
        assert secret not in recorded
        assert secret not in caplog.text


async def test_a_certificate_nobody_vouches_for_is_refused(
    tmp_path: Path, empty_database: str, smtp_server: SmtpServer
) -> None:
    config = mail_app(tmp_path, smtp_server, password=PASSWORD, trust=False)
    async with serving(config, empty_database) as client:
        assert (await client.post("/report-ready"))[0] == 200
        async with working(client):
            dead = await eventually(
                lambda: [j for j in mail_jobs(empty_database) if j["status"] == "dead"]
            )
    error = dead[0]["last_error"]
    assert error["code"] == "delivery_failed"
    assert "CERTIFICATE_VERIFY_FAILED" in error["message"]
    assert smtp_server.accounts.attempts == []  # no login was sent over an unchecked channel
    assert smtp_server.inbox.received == []
