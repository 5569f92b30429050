"""`ctx.mail`: e-mails rendered from Jinja2 templates and sent by a durable job.

`ctx.mail.send(...)` renders the message at once (a template error is the
caller's error) and queues it, in the run's transaction, as a job for the
built-in action `actions_server.sendMail`. That job hands the message to the
transport: `outbox` (the default, for development: a table, listed by
`actions-server mail list`) or `smtp`. A failed send retries with backoff and
ends as a dead job that `actions-server jobs retry` brings back.
"""

from __future__ import annotations

from ..errors import ActionsServerError

JOB_NAME = "actions_server.mail"
ACTION_NAME = "actions_server.sendMail"


class MailError(ActionsServerError):
    """A message that cannot be built: no recipient, a missing template, bad data."""
