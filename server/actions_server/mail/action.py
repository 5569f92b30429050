"""The built-in action that delivers queued mail (`actions_server.sendMail`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..manifests.model import ActionSpec, EventTrigger, Location, RetryPolicy
from . import ACTION_NAME, JOB_NAME

if TYPE_CHECKING:
    from ..context import Context


async def deliver(message: dict[str, Any], ctx: Context) -> None:
    await ctx.mail.deliver(message)


def send_mail_action(retry: RetryPolicy, timeout_seconds: float) -> ActionSpec:
    here = Location(file="(built in)", line=None)
    return ActionSpec(
        name=ACTION_NAME,
        module="actions_server",
        description="Deliver a message queued by ctx.mail.send",
        handler_ref="actions_server.mail.action:deliver",
        handler=deliver,
        input=None,
        output=None,
        triggers=(EventTrigger(event=f"job.{JOB_NAME}", location=here),),
        guards=(),
        retry=retry,
        timeout_seconds=timeout_seconds,
        transaction=True,
        run_as="caller",
        tags=("built-in",),
        location=here,
    )
