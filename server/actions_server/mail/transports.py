"""Where a queued message goes: the outbox table, or an SMTP server.

The outbox writes in the sending job's transaction, keyed by the job id, so a
retried job never stores a message twice. SMTP sends with the standard
library's client in a thread (it blocks); a refusal or a lost connection fails
the attempt, and the job retries with backoff. A send whose acknowledgement was
lost can be repeated: SMTP delivery is at least once.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from psycopg.types.json import Jsonb

from ..db.sqlfile import load_queries
from ..errors import ActionError

if TYPE_CHECKING:
    from ..scope import RunScope


class DeliveryFailed(ActionError):
    """The transport did not take the message (502 delivery_failed); the job will retry.

    An ActionError, so that the job records what the server answered as its error
    (shown by the dashboard and `actions-server jobs`), not a generic 500.
    """

    status = 502
    code = "delivery_failed"

    def __init__(self, message: str) -> None:
        super().__init__(None, None, message)


class Transport(Protocol):
    async def deliver(self, message: dict[str, Any], ctx: RunScope) -> None: ...


Q = load_queries(Path(__file__).with_name("queries.sql"))


class OutboxTransport:
    """Development: messages land in `actions_server.mail_outbox`."""

    async def deliver(self, message: dict[str, Any], ctx: RunScope) -> None:
        attachments = [
            {k: v for k, v in a.items() if k != "content_base64"} for a in message["attachments"]
        ]
        await ctx.db.raw(
            Q["store"],
            job_id=ctx.run.job_id,
            sender=message["from"],
            to=Jsonb(message["to"]),
            cc=Jsonb(message["cc"]),
            bcc=Jsonb(message["bcc"]),
            reply_to=message["reply_to"][0] if message["reply_to"] else None,
            subject=message["subject"],
            text=message["text"],
            html=message["html"],
            template=message["template"],
            attachments=Jsonb(attachments),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    tls: bool = False  # implicit TLS (port 465)
    timeout_seconds: float = 30.0
    ca_file: str | None = None  # PEM: trust these CAs instead of the system's


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        # Certificates are always checked, hostname included; `ca_file` only says
        # whom to believe (a private CA, or a server's self-signed certificate).
        self.tls_context = ssl.create_default_context(cafile=settings.ca_file)

    async def deliver(self, message: dict[str, Any], ctx: RunScope) -> None:
        email = await build_email(message, ctx)
        recipients = [*message["to"], *message["cc"], *message["bcc"]]
        try:
            await asyncio.to_thread(self._send, email, recipients)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(
                f"the SMTP server at {self.settings.host}:{self.settings.port} refused: {exc}"
            ) from exc

    def _send(self, email: EmailMessage, recipients: list[str]) -> None:
        settings = self.settings
        context = self.tls_context
        client: smtplib.SMTP
        if settings.tls:
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        with client:
            if settings.starttls and not settings.tls:
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(email, to_addrs=recipients)


async def build_email(message: dict[str, Any], ctx: RunScope) -> EmailMessage:
    email = EmailMessage()
    email["From"] = message["from"]
    email["To"] = ", ".join(message["to"])
    if message["cc"]:
        email["Cc"] = ", ".join(message["cc"])
    if message["reply_to"]:
        email["Reply-To"] = message["reply_to"][0]
    email["Subject"] = message["subject"]
    email["Message-ID"] = make_msgid()
    if message["text"]:
        email.set_content(message["text"])
    if message["html"]:
        if message["text"]:
            email.add_alternative(message["html"], subtype="html")
        else:
            email.set_content(message["html"], subtype="html")
    for attachment in message["attachments"]:
        if "key" in attachment:
            content = await ctx.storage.download(attachment["key"])
        else:
            content = base64.b64decode(attachment["content_base64"])
        maintype, _, subtype = attachment["content_type"].partition("/")
        email.add_attachment(
            content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment["filename"],
        )
    return email
