"""A message as a job carries it, and `ctx.mail.send`, which builds and queues one."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..jsonutil import dumps
from . import JOB_NAME, MailError
from .templates import Templates
from .transports import Transport

if TYPE_CHECKING:
    from ..scope import RunScope

MAX_INLINE_ATTACHMENT = 5 * 1024 * 1024


def _addresses(value: str | Iterable[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    found = [value] if isinstance(value, str) else list(value)
    for address in found:
        if not isinstance(address, str) or "@" not in address or any(c in address for c in "\r\n"):
            raise MailError(f"{what}: {address!r} is not an e-mail address")
    return found


def _attachment(item: Mapping[str, Any]) -> dict[str, Any]:
    """{filename, content (bytes or str) | key (a storage key), content_type}."""
    filename = item.get("filename")
    if not isinstance(filename, str) or not filename or any(c in filename for c in "\r\n/\\"):
        raise MailError(f"an attachment needs a plain filename, not {filename!r}")
    out: dict[str, Any] = {
        "filename": filename,
        "content_type": item.get("content_type") or "application/octet-stream",
    }
    if "key" in item:
        out["key"] = item["key"]
        return out
    content = item.get("content")
    if isinstance(content, str):
        content = content.encode()
    if not isinstance(content, bytes | bytearray):
        raise MailError(f"attachment {filename!r} needs content (bytes) or a storage key")
    if len(content) > MAX_INLINE_ATTACHMENT:
        raise MailError(
            f"attachment {filename!r} is over 5 MiB: upload it to storage and attach its key"
        )
    out["content_base64"] = base64.b64encode(bytes(content)).decode()
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Mailer:
    """An app's mail settings: its templates, its sender, its transport."""

    templates: Templates
    sender: str
    transport: Transport


class Mail:
    """`ctx.mail`."""

    __slots__ = ("_ctx", "_mailer")

    def __init__(self, ctx: RunScope, mailer: Mailer) -> None:
        self._ctx = ctx
        self._mailer = mailer

    async def deliver(self, message: dict[str, Any]) -> None:
        """Hand a queued message to the transport (what the built-in sendMail action does)."""
        await self._mailer.transport.deliver(message, self._ctx)

    async def send(
        self,
        to: str | Sequence[str],
        subject: str | None = None,
        template: str | None = None,
        data: Mapping[str, Any] | None = None,
        text: str | None = None,
        html: str | None = None,
        *,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        priority: int = 0,
    ) -> int:
        """Render the message now and queue its delivery with the run; the job's id."""
        recipients = _addresses(to, "to")
        if not recipients:
            raise MailError("a message needs at least one recipient")
        if template is not None:
            rendered = self._mailer.templates.render(template, dict(data or {}))
            subject = subject or rendered.subject
            text = text or rendered.text
            html = html or rendered.html
        if not subject:
            raise MailError(
                "a message needs a subject (give one, or a subject block in its template)"
            )
        if not text and not html:
            raise MailError("a message needs a body: text, html or a template")
        message = {
            "from": self._mailer.sender,
            "to": recipients,
            "cc": _addresses(cc, "cc"),
            "bcc": _addresses(bcc, "bcc"),
            "reply_to": _addresses(reply_to, "reply_to")[:1],
            "subject": subject.replace("\r", " ").replace("\n", " "),
            "text": text,
            "html": html,
            "template": template,
            "attachments": [_attachment(a) for a in attachments or ()],
        }
        dumps(message)  # JSON all the way down
        return await self._ctx.queue.push(JOB_NAME, message, priority=priority)
