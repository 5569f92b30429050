"""Webhook routes: verify on the raw bytes, then run once per delivery.

Nothing looks at a webhook request before its signature checks out: the body is
read whole (within `server.max_body_bytes` and the body timeout) and verified
first; a refusal is 401 `invalid_signature`, its reason logged, never the secret.
The verified body becomes the input (a JSON object, or form fields; another JSON
value under `data`), and `ctx.request` has the headers and the raw bytes.

A delivery id (Standard Webhooks' `webhook-id`, GitHub's `X-GitHub-Delivery`,
Stripe's event id) keys a receipt written with the run: a repeated delivery gets
the first answer without running the handler; a failed run keeps none, so the
sender's retry runs. `mode: async` verifies, keeps the receipt and queues the run
as a job in one transaction, and answers 202 at once; the job retries as any job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from ..auth import ANONYMOUS
from ..db.session import DbSession
from ..errors import BadRequest, RequestTimeout, Unauthorized
from ..executor import Executor
from ..guards import NOBODY
from ..jsonutil import InputError, JSONDecodeError, dumps, parse_input
from ..queue import store
from ..receipts import ReceiptKey, keep, look_up
from ..registry import Route
from ..webhooks.verify import SignatureRefused, verify
from .inputs import BodyLimits, read_body
from .responses import TRACE_HEADER, answer

log = logging.getLogger("actions_server.webhooks")

FORM = "application/x-www-form-urlencoded"


async def raw_body(request: web.BaseRequest, limits: BodyLimits) -> bytes:
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            return await read_body(request, limits.max_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {limits.timeout_seconds:g}s"
        ) from None


def webhook_input(content_type: str, body: bytes, params: dict[str, str]) -> dict[str, Any]:
    """A verified body as the action's input: a JSON object, form fields, or another
    JSON value under `data`; path parameters win, as for api routes."""
    payload: dict[str, Any]
    if content_type == FORM:
        try:
            payload = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise BadRequest("the form body is not UTF-8", code="malformed_body") from None
    elif not body.strip():
        payload = {}
    else:
        try:
            data = parse_input(body)
        except JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None
        except InputError as exc:
            raise BadRequest(f"the body is refused: {exc}", code="unsupported_json") from None
        payload = data if isinstance(data, dict) else {"data": data}
    payload.update(params)
    return payload


async def handle_webhook(
    request: web.BaseRequest,
    route: Route,
    params: dict[str, str],
    trace_id: str,
    *,
    executor: Executor,
    limits: BodyLimits,
    receipt_ttl: float,
    describe: Any,
) -> web.StreamResponse:
    trigger = route.webhook
    assert trigger is not None
    action = route.action
    body = await raw_body(request, limits)
    try:
        verified = verify(trigger.verify, request.headers, body, time.time())
    except SignatureRefused as exc:
        log.warning(
            "webhook %s refused: %s",
            action.name,
            exc.reason,
            extra={"action": action.name, "trace_id": trace_id},
        )
        raise Unauthorized(
            "the webhook's signature is missing, invalid or stale", code="invalid_signature"
        ) from None
    payload = webhook_input(request.content_type, body, params)
    receipt = None
    if verified.delivery_id:
        receipt = ReceiptKey(
            scope=f"webhook|{action.name}",
            key=verified.delivery_id,
            fingerprint=None,
            ttl_seconds=receipt_ttl,
        )
    if trigger.mode == "async":
        return await accept(executor, route, payload, receipt, trace_id)
    result = await executor.run(
        action,
        payload,
        trigger="webhook",
        caller=NOBODY,
        trace_id=trace_id,
        request=describe(request, request.rel_url.path, body),
        receipt=receipt,
        status=route.status,
    )
    return answer(result, route.status, trace_id)


async def accept(
    executor: Executor,
    route: Route,
    payload: dict[str, Any],
    receipt: ReceiptKey | None,
    trace_id: str,
) -> web.StreamResponse:
    """`mode: async`: the receipt and the queued run commit together; 202 at once."""
    action = route.action
    session = DbSession(executor.database)
    try:
        conn = await session.connection()
        stored = await look_up(conn, receipt) if receipt is not None else None
        if stored is None:
            [job_id] = await store.enqueue(
                conn,
                [
                    store.NewJob(
                        kind="job",
                        name=f"webhook:{action.name}",
                        action=action.name,
                        payload=payload,
                        max_attempts=action.retry.attempts,
                        trace_id=trace_id,
                        principal=ANONYMOUS.to_json(),
                    )
                ],
            )
            body = dumps({"accepted": True, "job_id": job_id})
            if receipt is not None:
                await keep(conn, receipt, 202, {"Content-Type": "application/json"}, body)
    except BaseException:
        await session.finish(commit=False)
        raise
    await session.finish(commit=True)
    if stored is not None:
        headers = {**stored.headers, TRACE_HEADER: trace_id, "Idempotent-Replayed": "true"}
        return web.Response(status=stored.status, body=stored.body, headers=headers)
    headers = {"Content-Type": "application/json", TRACE_HEADER: trace_id}
    return web.Response(status=202, body=body, headers=headers)
