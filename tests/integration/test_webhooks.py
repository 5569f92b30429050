"""Webhook triggers through real HTTP: signatures from the reference signers verify,
anything else is 401 and runs nothing; a repeated delivery runs once; a failed run
keeps no receipt so the retry runs; `mode: async` answers 202 and runs as a job."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import stripe
from standardwebhooks import Webhook

from support.apps import Client, serving, working, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

STANDARD_SECRET = "whsec_" + base64.b64encode(b"a standard webhooks secret!").decode()
NEXT_STANDARD = "whsec_" + base64.b64encode(b"the next secret in rotation").decode()
STRIPE_SECRET = "whsec_test_stripe_0123456789"
GITHUB_SECRET = "It's a Secret to Everybody"

MANIFEST = f"""
module: hooks
prefix: /hooks
actions:
  - name: hooks.standard
    handler: PKG.handlers:record
    triggers:
      - webhook: POST /standard
        verify: {{scheme: standard, secrets: ["{NEXT_STANDARD}", "${{STANDARD_SECRET}}"]}}
  - name: hooks.stripe
    handler: PKG.handlers:record
    triggers:
      - webhook: POST /stripe
        verify: {{scheme: stripe, secrets: ["{STRIPE_SECRET}"], tolerance_seconds: 300}}
  - name: hooks.github
    handler: PKG.handlers:record
    triggers:
      - webhook: POST /github
        verify: {{scheme: github, secrets: ["{GITHUB_SECRET}"]}}
  - name: hooks.flaky
    handler: PKG.handlers:flaky
    triggers:
      - webhook: POST /flaky
        verify: {{scheme: standard, secrets: ["{NEXT_STANDARD}"]}}
  - name: hooks.later
    handler: PKG.handlers:record
    retry: {{attempts: 3, backoff: fixed, base_seconds: 0.1}}
    triggers:
      - webhook: POST /later
        verify: {{scheme: standard, secrets: ["{NEXT_STANDARD}"]}}
        mode: async
"""

HANDLERS = """
async def record(input, ctx):
    request = ctx.request
    await ctx.db.raw(
        "INSERT INTO deliveries (action, body, signature_header) VALUES (%s, %s, %s)",
        ctx.run.action, request.body.decode() if request else None,
        request.header("webhook-id") or request.header("X-GitHub-Delivery") if request else None,
    )
    return {"received": input.get("type") or input.get("action") or True}

async def flaky(input, ctx):
    [row] = await ctx.db.raw("SELECT count(*)::int AS n FROM deliveries WHERE action = 'hooks.flaky.tries'")
    await ctx.db.raw("INSERT INTO deliveries (action) VALUES ('hooks.flaky')")
    if not input.get("fixed"):
        raise RuntimeError("down for a moment")
    return {"ok": True}
"""

MIGRATION = "CREATE TABLE deliveries (id serial PRIMARY KEY, action text, body text, signature_header text);"


@pytest.fixture
async def app(
    tmp_path: Path, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Client]:
    monkeypatch.setenv("STANDARD_SECRET", STANDARD_SECRET)
    config, _ = write_app(
        tmp_path, {"hooks.yaml": MANIFEST}, HANDLERS, migrations={"001.sql": MIGRATION}
    )
    async with serving(config, empty_database) as client:
        yield client


def deliveries(dsn: str, action: str) -> list[dict]:
    return query(dsn, "SELECT * FROM deliveries WHERE action = %s ORDER BY id", action)


def standard(
    body: bytes, secret: str = STANDARD_SECRET, *, at: float | None = None, msg: str = "msg_1"
) -> dict:
    at = time.time() if at is None else at
    stamp = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    signature = Webhook(secret).sign(msg, stamp, body.decode())
    return {
        "webhook-id": msg,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


BODY = json.dumps({"id": "evt_1", "type": "invoice.paid", "amount": 1200}).encode()


async def test_reference_signatures_run_the_action_once_per_delivery(
    app: Client, empty_database: str
) -> None:
    status, body, _ = await app.post("/hooks/standard", data=BODY, headers=standard(BODY))
    assert (status, body) == (200, {"received": "invoice.paid"})
    [row] = deliveries(empty_database, "hooks.standard")
    assert row["body"] == BODY.decode()  # ctx.request.body: the raw bytes
    assert row["signature_header"] == "msg_1"
    # The sender retries the same delivery: the first answer, nothing run again.
    status, body, response = await app.post("/hooks/standard", data=BODY, headers=standard(BODY))
    assert (status, body) == (200, {"received": "invoice.paid"})
    assert response.headers["Idempotent-Replayed"] == "true"
    assert len(deliveries(empty_database, "hooks.standard")) == 1

    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET)
    for _ in range(2):  # Stripe's retry carries the same event id in the body
        status, body, _ = await app.post(
            "/hooks/stripe",
            data=BODY,
            headers={"Stripe-Signature": header, "content-type": "application/json"},
        )
        assert (status, body) == (200, {"received": "invoice.paid"})
    assert len(deliveries(empty_database, "hooks.stripe")) == 1

    github = json.dumps({"action": "opened"}).encode()
    digest = hmac.new(GITHUB_SECRET.encode(), github, hashlib.sha256).hexdigest()
    status, body, _ = await app.post(
        "/hooks/github",
        data=github,
        headers={
            "X-Hub-Signature-256": f"sha256={digest}",
            "X-GitHub-Delivery": "d-1",
            "content-type": "application/json",
        },
    )
    assert (status, body) == (200, {"received": "opened"})


async def test_bad_signatures_are_401_and_run_nothing(
    app: Client, empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    cases = {
        "one byte changed": (BODY.replace(b"1200", b"1201"), standard(BODY)),
        "a wrong secret": (BODY, standard(BODY, "whsec_" + base64.b64encode(b"nope").decode())),
        "six minutes old": (BODY, standard(BODY, at=now - 360)),
        "six minutes ahead": (BODY, standard(BODY, at=now + 360)),
        "no signature": (BODY, {"content-type": "application/json"}),
        "a malformed header": (BODY, {**standard(BODY), "webhook-timestamp": "yesterday"}),
    }
    for case, (body, headers) in cases.items():
        status, answer, _ = await app.post("/hooks/standard", data=body, headers=headers)
        assert (status, answer["error"]["code"]) == (401, "invalid_signature"), case
    assert deliveries(empty_database, "hooks.standard") == []
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "webhook hooks.standard refused" in logged
    assert STANDARD_SECRET not in logged


async def test_a_rotated_secret_verifies(app: Client, empty_database: str) -> None:
    status, _, _ = await app.post(
        "/hooks/standard", data=BODY, headers=standard(BODY, NEXT_STANDARD, msg="msg_2")
    )
    assert status == 200


async def test_a_failed_run_keeps_no_receipt_so_the_retry_runs(
    app: Client, empty_database: str
) -> None:
    failing = json.dumps({"fixed": False}).encode()
    status, _, _ = await app.post(
        "/hooks/flaky", data=failing, headers=standard(failing, NEXT_STANDARD, msg="m-9")
    )
    assert status == 500
    assert deliveries(empty_database, "hooks.flaky") == []  # rolled back
    fixed = json.dumps({"fixed": True}).encode()
    status, _, _ = await app.post(
        "/hooks/flaky", data=fixed, headers=standard(fixed, NEXT_STANDARD, msg="m-9")
    )
    assert status == 200
    assert len(deliveries(empty_database, "hooks.flaky")) == 1


async def test_async_mode_answers_202_and_runs_as_a_job_once(
    app: Client, empty_database: str
) -> None:
    headers = standard(BODY, NEXT_STANDARD, msg="async-1")
    status, body, _ = await app.post("/hooks/later", data=BODY, headers=headers)
    assert status == 202
    assert body["accepted"] is True
    status, again, response = await app.post("/hooks/later", data=BODY, headers=headers)
    assert (status, again) == (202, body)
    assert response.headers["Idempotent-Replayed"] == "true"
    async with working(app):
        assert await eventually(lambda: deliveries(empty_database, "hooks.later"))
    [row] = deliveries(empty_database, "hooks.later")
    assert row["body"] is None  # a job has no ctx.request
    assert len(query(empty_database, "SELECT id FROM actions_server.jobs")) == 1
